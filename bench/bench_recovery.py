"""Benchmark text tool-call recovery on the corpus: recovery rate per style and time per call.

Run with ``.venv/bin/python bench/bench_recovery.py [--repeat N]``. Prints one row per style
(cases, recovered exactly), the overall fraction of positive cases recovered, false positives
on the negative cases, and the median and p99 time of one `recover_tool_calls` call in
microseconds: over the corpus, over plain prose (the fast path) and over prose that names a
tool (which passes the pre-check and runs every stage).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from colony.llm.textcalls import recover_tool_calls

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "malformed_tool_calls.jsonl"
TOOLS = [
    "read_file", "write_file", "patch_file", "list_dir",
    "search_files", "run_command", "http_get", "memory_recall",
]  # fmt: skip
PROSE = [
    "The capital of France is Paris.",
    "Sure - the function returns a list of numbers, sorted in ascending order, and never mutates its input. "
    "If you pass an empty list you get an empty list back.",
    "I looked at it (carefully) and the answer is 42; see the notes above for the derivation.",
]

#: Prose that passes the cheap pre-check (a tool is named, brackets appear) and runs every stage.
NAMING_PROSE = [
    "I used read_file (twice) on config.toml; the port is 8080 and [debug] is off.",
    "The list_dir tool returns entries like {name, size}; run_command runs a shell command (careful).",
]


def matches(case: dict[str, Any]) -> bool:
    calls = recover_tool_calls(case["text"], case["tools"]).calls
    return [{"name": c.name, "arguments": c.arguments} for c in calls] == case["expected"]


def timings_us(texts: list[tuple[str, list[str]]], repeat: int) -> list[float]:
    samples: list[float] = []
    for text, tools in texts:
        recover_tool_calls(text, tools)  # warm the per-tool-set caches once
        for _ in range(repeat):
            start = time.perf_counter_ns()
            recover_tool_calls(text, tools)
            samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=200, help="timed runs per case")
    args = parser.parse_args()

    cases = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_style: dict[str, list[bool]] = defaultdict(list)
    false_positives: list[str] = []
    for case in cases:
        if case["expected"]:
            by_style[case["style"]].append(matches(case))
        elif recover_tool_calls(case["text"], case["tools"]).calls:
            false_positives.append(case["id"])

    print(f"{'style':<22}{'cases':>7}{'recovered':>11}")
    for style in sorted(by_style):
        results = by_style[style]
        print(f"{style:<22}{len(results):>7}{sum(results):>11}")
    positives = [ok for results in by_style.values() for ok in results]
    negatives = len(cases) - len(positives)
    print(f"{'total':<22}{len(positives):>7}{sum(positives):>11}")
    print(f"\nrecovered exactly: {sum(positives) / len(positives):.3f} of {len(positives)} positive cases")
    print(f"false positives:   {len(false_positives)} of {negatives} negative cases {false_positives or ''}")

    corpus_times = timings_us([(c["text"], c["tools"]) for c in cases], args.repeat)
    prose_times = timings_us([(text, TOOLS) for text in PROSE], args.repeat * 5)
    naming_times = timings_us([(text, TOOLS) for text in NAMING_PROSE], args.repeat * 5)
    print(f"\n{'time per recovery':<22}{'median µs':>11}{'p99 µs':>10}{'samples':>9}")
    rows = (
        ("corpus (all cases)", corpus_times),
        ("plain prose", prose_times),
        ("prose naming a tool", naming_times),
    )
    for label, samples in rows:
        print(f"{label:<22}{statistics.median(samples):>11.1f}{p99(samples):>10.1f}{len(samples):>9}")


if __name__ == "__main__":
    main()
