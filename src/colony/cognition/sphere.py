"""The continuous cognitive state: one point on the unit sphere, rotating smoothly.

theta in [0, pi] runs from exploit (0) to explore (pi) and follows free energy -- here the
surprisal EMA blended with task uncertainty, both in [0, 1]. phi runs from self (0) toward
colony (pi) and follows Psi, the colony's collective-intelligence signal, the geometric mean
of intelligence, sync, diversity and learning velocity. A node without peers has Psi = 0 and
stays at the "self" meridian; federation supplies the factors once it exists.

The point never jumps: each update moves it along the great circle toward the target by at most
`MAX_STEP` radians (spherical linear interpolation), so the state is continuous in time however
abruptly its drivers change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_STEP", "CognitiveSphere", "free_energy", "psi"]

MAX_STEP = 0.2  # radians per update


def free_energy(surprisal_ema: float, task_uncertainty: float) -> float:
    return min(1.0, max(0.0, 0.6 * surprisal_ema + 0.4 * task_uncertainty))


def psi(intelligence: float, sync: float, diversity: float, velocity: float) -> float:
    """Psi = (intelligence x sync x diversity x velocity)^(1/4), each factor clipped to [0, 1]."""
    product = 1.0
    for f in (intelligence, sync, diversity, velocity):
        product *= min(1.0, max(0.0, f))
    return float(product ** 0.25)


def _cartesian(theta: float, phi: float) -> tuple[float, float, float]:
    return math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)


def _angles(x: float, y: float, z: float) -> tuple[float, float]:
    theta = math.acos(max(-1.0, min(1.0, z)))
    phi = math.atan2(y, x) % (2 * math.pi) if abs(math.sin(theta)) > 1e-9 else 0.0
    return theta, phi


def angular_distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    pa, pb = _cartesian(*a), _cartesian(*b)
    return math.acos(max(-1.0, min(1.0, sum(x * y for x, y in zip(pa, pb, strict=True)))))


class CognitiveSphere:
    name = "sphere"
    enabled = True

    def __init__(self) -> None:
        self.theta = math.pi / 2 * 0.5  # leaning toward exploit, like a fresh balanced regime
        self.phi = 0.0
        self.updates = 0

    def update(self, free_energy_value: float, psi_value: float) -> float:
        """Rotate toward the target; returns the angle moved (always <= MAX_STEP)."""
        target = (math.pi * min(1.0, max(0.0, free_energy_value)), math.pi * min(1.0, max(0.0, psi_value)))
        here = (self.theta, self.phi)
        omega = angular_distance(here, target)
        self.updates += 1
        if omega < 1e-9:
            return 0.0
        t = min(1.0, MAX_STEP / omega)
        a, b = _cartesian(*here), _cartesian(*target)
        if omega > math.pi - 1e-6:  # antipodal: any great circle works; nudge theta directly
            self.theta = min(math.pi, max(0.0, self.theta + math.copysign(MAX_STEP, target[0] - self.theta)))
            return MAX_STEP
        s = math.sin(omega)
        wa, wb = math.sin((1 - t) * omega) / s, math.sin(t * omega) / s
        self.theta, new_phi = _angles(*(wa * x + wb * y for x, y in zip(a, b, strict=True)))
        self.phi = new_phi if abs(math.sin(self.theta)) > 1e-9 else self.phi
        return min(MAX_STEP, omega)

    @property
    def exploration(self) -> float:
        """0 = pure exploit, 1 = pure explore."""
        return self.theta / math.pi

    def dump(self) -> dict[str, Any]:
        return {"theta": self.theta, "phi": self.phi, "updates": self.updates}

    def load(self, state: Mapping[str, Any]) -> None:
        self.theta = float(state.get("theta", self.theta))
        self.phi = float(state.get("phi", 0.0))
        self.updates = int(state.get("updates", 0))

    def status(self) -> dict[str, Any]:
        x, y, z = _cartesian(self.theta, self.phi)
        return {"enabled": True, "theta": round(self.theta, 4), "phi": round(self.phi, 4),
                "exploration": round(self.exploration, 4), "xyz": [round(x, 4), round(y, 4), round(z, 4)],
                "updates": self.updates}
