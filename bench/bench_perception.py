"""Latency of `colony.agent.perception.perceive` on short, medium and 1 MB inputs.

A plain script (``.venv/bin/python bench/bench_perception.py``): it prints median and p99
microseconds per call. Perception runs on every turn before the model call, so it must stay far
below anything a user could notice; the targets are tens of microseconds for a sentence and
under a millisecond for a 1 MB paste (only its two ends are analysed).
"""

from __future__ import annotations

import gc
import random
import statistics
import time

from colony.agent.perception import perceive

__all__ = ["INPUTS", "main", "measure"]

_SHORT = "Delete the old logs in /var/log/app before Friday!"
_MEDIUM = (
    "Please refactor src/colony/agent/loop.py so the retry logic uses the shared breaker from "
    "colony.breaker; don't change the public API, keep tests passing with pytest>=8.3, and make sure "
    "it works on Python 3.11. Also check `run_turn` in the README and ask John if anything is unclear? "
    "Thanks a lot, Maria, for the review."
)[:300]
_WORDS = [
    "the",
    "quick",
    "Brown",
    "fox",
    "jumps",
    "over",
    "/tmp/a.py",
    '"quoted"',
    "https://a.b/c",
    "delete",
    "must",
    "never",
    "maybe",
]


def _prose_mb() -> str:
    rng = random.Random(7)
    return " ".join(rng.choice(_WORDS) for _ in range(200_000))[: 1 << 20]


INPUTS: dict[str, str] = {
    "short (50 chars)": _SHORT,
    "medium (300 chars)": _MEDIUM,
    "1 MB dense prose": _prose_mb(),
    "1 MB single token": "x" * (1 << 20),
}


def measure(text: str, runs: int) -> tuple[float, float]:
    """Median and p99 latency in microseconds over `runs` calls, after a short warm-up."""
    for _ in range(min(50, runs)):
        perceive(text)
    samples: list[float] = []
    gc.disable()  # a collection landing in one sample says nothing about perception
    try:
        for _ in range(runs):
            start = time.perf_counter_ns()
            perceive(text)
            samples.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    print(f"{'input':<22}{'chars':>10}{'runs':>8}{'median us':>12}{'p99 us':>10}")
    for name, text in INPUTS.items():
        runs = 2000 if len(text) < 10_000 else 500
        median, p99 = measure(text, runs)
        print(f"{name:<22}{len(text):>10}{runs:>8}{median:>12.1f}{p99:>10.1f}")


if __name__ == "__main__":
    main()
