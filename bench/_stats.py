"""Small helpers shared by the benchmark scripts: percentiles and a printed table."""

from __future__ import annotations

import os
import platform
import statistics


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(title: str, rows: list[tuple[str, list[float]]], unit: str = "ms", target: str = "") -> None:
    print(f"\n{title}  ({machine()})")
    print(f"{'case':<44} {'n':>6} {'median':>10} {'p99':>10} {'mean':>10}   unit={unit}")
    for name, samples in rows:
        print(
            f"{name:<44} {len(samples):>6} {statistics.median(samples):>10.4f} "
            f"{percentile(samples, 99):>10.4f} {statistics.fmean(samples):>10.4f}"
        )
    if target:
        print(f"target: {target}")
