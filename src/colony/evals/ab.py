"""A/B runs: the suite with a module set on (B) and off (A), plus A again (A') as the noise floor.

Every case runs ``trials`` times under each condition, interleaved (A, B, A' for trial 0, then
trial 1, ...) so drift in a live model's load spreads evenly. Pass rates are pooled per property
kind over cases and trials; each gets a Wilson 95% interval. The A/A difference shows how far
two runs of the *same* condition wander apart; a B - A difference is only worth reporting when
it clearly exceeds that and the A and B intervals do not overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from colony.config import Settings
from colony.evals import _store
from colony.evals.models import EvalCase
from colony.evals.runner import Progress, run_trial
from colony.evals.stats import overlap, wilson
from colony.llm.model import Model
from colony.store import Database
from colony.store.sessions import new_id

__all__ = ["ABReport", "ABRow", "Arm", "conditions", "run_ab"]

Arm = Literal["A", "B", "A2"]
ALL = "all"


class ABRow(BaseModel):
    property: str
    n: int
    a_passed: int
    b_passed: int
    a2_passed: int
    a_rate: float
    b_rate: float
    a2_rate: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    a2_ci: tuple[float, float]
    diff: float  # B - A
    aa_diff: float  # A' - A: the noise floor
    distinguishable: bool  # A and B intervals do not overlap


class ABReport(BaseModel):
    id: str
    model: str
    modules: list[str]
    trials: int
    cases: int
    conditions: dict[str, dict[str, Any]]
    rows: list[ABRow]


def conditions(modules: Sequence[str]) -> dict[Arm, dict[str, Any]]:
    """Settings overrides per arm: ``all`` toggles the substrate; a list toggles just those modules."""
    on: dict[str, Any] = {"cognition_enabled": True, "cognition_disabled_modules": []}
    if list(modules) == [ALL]:
        off: dict[str, Any] = {"cognition_enabled": False, "cognition_disabled_modules": []}
    else:
        off = {"cognition_enabled": True, "cognition_disabled_modules": sorted(modules)}
    return {"A": off, "B": on, "A2": dict(off)}


def _row(prop: str, tally: dict[Arm, list[int]]) -> ABRow:
    n = tally["A"][1]
    a, b, a2 = tally["A"][0], tally["B"][0], tally["A2"][0]
    ra, rb, ra2 = (a / n, b / n, a2 / n) if n else (0.0, 0.0, 0.0)
    ca, cb, ca2 = wilson(a, n), wilson(b, n), wilson(a2, n)
    return ABRow(property=prop, n=n, a_passed=a, b_passed=b, a2_passed=a2, a_rate=round(ra, 4), b_rate=round(rb, 4),
                 a2_rate=round(ra2, 4), a_ci=_r(ca), b_ci=_r(cb), a2_ci=_r(ca2), diff=round(rb - ra, 4),
                 aa_diff=round(ra2 - ra, 4), distinguishable=not overlap(ca, cb))


def _r(ci: tuple[float, float]) -> tuple[float, float]:
    return round(ci[0], 4), round(ci[1], 4)


async def run_ab(
    db: Database, model: Model, settings: Settings, cases: Sequence[EvalCase], *, modules: Sequence[str] = (ALL,),
    trials: int = 5, progress: Progress | None = None,
) -> ABReport:
    if trials < 1:
        raise ValueError("trials must be at least 1")
    arms = conditions(modules)
    tallies: dict[str, dict[Arm, list[int]]] = {}
    for case in cases:
        for t in range(trials):
            for arm, overrides in arms.items():
                result = await run_trial(case, model, settings, overrides, t)
                for prop, (ok, _) in result.checks.items():
                    kind = prop.split("(", 1)[0]
                    for key in (kind, "all"):
                        cell = tallies.setdefault(key, {"A": [0, 0], "B": [0, 0], "A2": [0, 0]})[arm]
                        cell[0] += ok
                        cell[1] += 1
            if progress is not None:
                progress(f"{case.id} trial {t + 1}/{trials}")
    order = sorted(tallies, key=lambda k: (k == "all", k))
    report = ABReport(id=new_id("ab"), model=model.name, modules=list(modules), trials=trials, cases=len(cases),
                      conditions={str(k): v for k, v in arms.items()}, rows=[_row(k, tallies[k]) for k in order])
    _store.insert_ab(db, ab_id=report.id, model=report.model, modules=report.modules, trials=trials,
                     report=report.model_dump_json())
    return report
