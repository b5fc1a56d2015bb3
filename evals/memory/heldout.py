"""The fusion rule on held-out corpora: fused recall@5 against the best single channel, per type.

Run: ``python -m evals.memory.heldout [--generators kestrel civic diary] [--seeds 201 202 203 204]
[--memories 1000] [--questions 200] [--markdown FILE]``

The calibration (`colony.memory._calibrated`) was fitted with the first generator's seeds 101–103
(coefficients) and the second's (the fallback threshold); the third generator (``diary``) was
never part of a fit. Each generator's corpora for the held-out seeds are built, recalled under
every channel alone and fused, and pooled per question type — ~100 questions per type and
generator with the defaults, so one question moves a type's recall by ~0.01. The test command
asserts the rule on the same numbers (`tests/test_memory_generalisation.py`).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from evals.memory.corpora import GENERATORS, Generator, evaluate
from evals.memory.metrics import EvalReport

__all__ = ["CHANNELS", "MARGIN", "SEEDS", "Pooled", "main", "pooled"]

SEEDS = (201, 202, 203, 204)
MARGIN = 0.02
CHANNELS = ("keyword", "semantic", "graph")


@dataclass(frozen=True)
class Pooled:
    """One generator's held-out reports pooled: recall@5 per configuration and type, abstention."""

    recall: dict[str, dict[str, float]]  # config → type → recall@5
    counts: dict[str, int]  # type → questions
    false_abstain: float  # share of answerable questions where fused recall said "nothing relevant"
    caught: float  # share of unanswerable questions where it did

    def gap(self, qtype: str) -> tuple[float, str, float]:
        """(fused recall, the best single channel, its recall) for ``qtype``."""
        best = max(CHANNELS, key=lambda c: self.recall[c][qtype])
        return self.recall["fused"][qtype], best, self.recall[best][qtype]

    def shortfalls(self, margin: float = MARGIN) -> dict[str, float]:
        """Types where fused recall is more than ``margin`` below the best channel: type → gap."""
        out = {}
        for qtype in sorted(self.counts):
            fused, _, best = self.gap(qtype)
            if fused < best - margin:
                out[qtype] = round(fused - best, 4)
        return out


def pooled(reports: list[EvalReport]) -> Pooled:
    """Pool reports (one per seed) per configuration and question type, weighting by questions."""
    hits: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for report in reports:
        for name, config in report.configs.items():
            for qtype, score in config.by_type.items():
                if qtype == "abstention":
                    continue
                hits[name][qtype] += score.recall * score.n
                counts[name][qtype] += score.n
    answerable = [q for r in reports for q in r.per_question if q.type != "abstention"]
    unanswerable = [q for r in reports for q in r.per_question if q.type == "abstention"]
    return Pooled(
        recall={name: {t: hits[name][t] / counts[name][t] for t in counts[name]} for name in counts},
        counts=dict(counts["fused"]),
        false_abstain=sum(bool(q.abstained.get("fused")) for q in answerable) / max(len(answerable), 1),
        caught=sum(bool(q.abstained.get("fused")) for q in unanswerable) / max(len(unanswerable), 1),
    )


def _markdown(results: dict[str, Pooled], seeds: tuple[int, ...], memories: int, questions: int) -> str:
    lines = [f"Seeds {', '.join(map(str, seeds))}; {memories} memories and {questions} questions per corpus; "
             "recall@5 pooled over the seeds (best single channel in bold; ✗ = fused more than "
             f"{MARGIN} below it).", ""]
    for generator, result in results.items():
        lines += [f"**{generator}**", "", "| type (questions) | keyword | semantic | graph | fused | fused − best |",
                  "|---|---|---|---|---|---|"]
        for qtype in sorted(result.counts):
            fused, best, top = result.gap(qtype)
            cells = [f"**{result.recall[c][qtype]:.3f}**" if c == best else f"{result.recall[c][qtype]:.3f}"
                     for c in CHANNELS]
            mark = " ✗" if fused < top - MARGIN else ""
            lines.append(f"| {qtype} ({result.counts[qtype]}) | {' | '.join(cells)} | {fused:.3f} | "
                         f"{fused - top:+.3f}{mark} |")
        lines += ["", f"Abstention: wrongly says \"nothing relevant\" on {result.false_abstain:.1%} of answerable "
                  f"questions, says it on {result.caught:.1%} of unanswerable ones.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.memory.heldout", description=__doc__.splitlines()[0])
    parser.add_argument("--generators", nargs="+", choices=[g for g in GENERATORS if g != "mixed"],
                        default=["kestrel", "civic", "diary"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--memories", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown to this file")
    args = parser.parse_args(argv)
    console = Console()
    results: dict[str, Pooled] = {}
    generators: list[Generator] = args.generators
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("held-out corpora", total=len(generators) * len(args.seeds))
        for generator in generators:
            reports = []
            for seed in args.seeds:
                progress.update(task, description=f"{generator} seed {seed}")
                reports.append(evaluate(generator, seed, args.memories, args.questions))
                progress.advance(task)
            results[generator] = pooled(reports)
    failing = 0
    for name, result in results.items():
        table = Table(title=f"{name}: recall@5 pooled over seeds {', '.join(map(str, args.seeds))}")
        for column in ("type", *CHANNELS, "fused", "fused − best"):
            table.add_column(column, justify="left" if column == "type" else "right")
        for qtype in sorted(result.counts):
            fused, best, top = result.gap(qtype)
            short = fused < top - MARGIN
            failing += short
            table.add_row(f"{qtype} ({result.counts[qtype]})",
                          *(f"[bold]{result.recall[c][qtype]:.3f}[/]" if c == best else f"{result.recall[c][qtype]:.3f}"
                            for c in CHANNELS),
                          f"{fused:.3f}", f"[red]{fused - top:+.3f}[/]" if short else f"{fused - top:+.3f}")
        console.print(table)
        console.print(f"abstention: wrong on {result.false_abstain:.1%} of answerable, "
                      f"caught {result.caught:.1%} of unanswerable\n")
    if args.markdown:
        args.markdown.write_text(_markdown(results, tuple(args.seeds), args.memories, args.questions), encoding="utf-8")
    console.print(f"{failing} type(s) more than {MARGIN} below their best channel")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
