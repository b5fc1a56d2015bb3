"""Wilson score intervals: valid at small n and near 0 or 1, where the normal interval is not.

    p = k / n,  c = (p + z^2 / 2n) / (1 + z^2 / n),  m = z sqrt(p(1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)
    interval = (c - m, c + m)

Two conditions are called distinguishable only when their intervals do not overlap: a
deliberately conservative bar (overlapping intervals can still hide a real difference).
"""

from __future__ import annotations

import math

__all__ = ["Z95", "overlap", "wilson"]

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson interval for ``k`` successes in ``n`` trials ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be between 0 and n={n}")
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, center - margin), min(1.0, center + margin)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
