"""Colony's memory side by side with the engines users pick: LanceDB and Chroma.

Run: .venv/bin/python bench/bench_memory_peers.py [--data DIR ...] [--scale 100000] [--markdown FILE]

Needs the peers, which are never part of Colony's runtime:
    .venv/bin/pip install -e '.[bench-peers]'

Why this exists: an agent's memory competes with the vector stores people already use, so the
claim "better recall, fast enough" must be checked against them in one run, on the same corpora
and the *same vectors*. Every engine gets the vectors of Colony's static embedder
(`colony.memory.embed`, computed once here); nothing downloads a model, and the run is offline
(Chroma's telemetry is off, non-loopback connections are refused; see `_peers/offline.py`).

Two parts:

1. **Quality** on every eval corpus (`evals/memory/**` data dirs, or ``--data`` repeated): each
   engine is built from the corpus and asked every question at k = 5. recall@5 and MRR per
   question type, as `python -m evals.memory.run` scores them; questions with no relevant
   memory score whether the engine abstained (Colony's ``abstained`` flag, or an empty answer).
2. **Scale** (``--scale N``, default 100,000; 0 skips): the first corpus padded with generated
   distractors to N memories (as `bench/bench_memory.py` fills its 100K store; by default from
   the eval's other generator, whose names cannot contradict the corpus: ``--pad``). Per engine:
   ingest rate (corpus in memory → searchable store, index builds included, embedding excluded
   for all), size on disk, p50/p95 latency over the corpus's questions (query embedding
   included for all), recall@5 / MRR, and for pure vector searches the share of the top 5 that
   reach the exact top-5 cosine (how approximate the index is).

What is compared (see `_peers/engines.py`): Colony fused recall and its semantic channel alone;
LanceDB exact vector, full-text (BM25) and stock hybrid (full text + exact vector, 5 rows a
side, RRF K = 60), then vector and hybrid through a stock IVF-PQ index; Chroma HNSW vector.
A default run takes about 5 minutes on 2 cores; ``--scale 20000`` for a quick one.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from evals.memory.metrics import recall_at_k, reciprocal_rank
from rich.console import Console
from rich.table import Table

from _peers.data import Corpus, discover, embed_all, exact_threshold, load, padded
from _peers.engines import ENGINES, PEER_MODULES, Build, Config, Engine, HistoryMode, make_engine
from _peers.offline import forbid_network
from _stats import percentile
from colony.memory.embed import Embedder, load_embedder

EVAL_ROOT = Path(__file__).parents[1] / "evals" / "memory"
ALL = "all"


# ---- measuring -------------------------------------------------------------------------------


@dataclass
class Scored:
    """One configuration on one corpus: a row per question, latencies, exactness."""

    config: str
    build: str
    #: (question type, recall@k, reciprocal rank) for every answerable question.
    answers: list[tuple[str, float, float]] = field(default_factory=list)
    unanswerable: int = 0
    abstained_right: int = 0
    #: Answerable questions on which the engine said it found nothing relevant.
    abstained_wrong: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    exact: list[float] = field(default_factory=list)
    #: Knowledge updates: whether a superseded version came before the current one.
    stale_first: list[bool] = field(default_factory=list)

    def score(self, qtype: str = ALL) -> tuple[float, float, int]:
        rows = [a for a in self.answers if qtype == ALL or a[0] == qtype]
        if not rows:
            return 0.0, 0.0, 0
        return sum(r for _, r, _ in rows) / len(rows), sum(rr for _, _, rr in rows) / len(rows), len(rows)

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50) if self.latencies_ms else 0.0

    @property
    def p95(self) -> float:
        return percentile(self.latencies_ms, 95) if self.latencies_ms else 0.0

    @property
    def exactness(self) -> float | None:
        return sum(self.exact) / len(self.exact) if self.exact else None


@dataclass
class BuildSummary:
    engine: str
    memories: int
    seconds: float
    size_bytes: int
    note: str

    @property
    def rate(self) -> float:
        return self.memories / self.seconds if self.seconds else 0.0


@dataclass
class CorpusRun:
    name: str
    note: str
    memories: int
    questions: int
    builds: list[BuildSummary] = field(default_factory=list)
    scored: list[Scored] = field(default_factory=list)

    def types(self) -> list[str]:
        return sorted({a[0] for s in self.scored for a in s.answers})


def measure(config: Config, build: str, corpus: Corpus, query_vectors: np.ndarray, k: int, warmup: int) -> Scored:
    """Ask every question once (after ``warmup`` untimed ones) and score the answers."""
    out = Scored(config.name, build)
    for q in corpus.questions[:warmup]:
        config.search(q)
    for q, qv in zip(corpus.questions, query_vectors, strict=True):
        started = time.perf_counter()
        answer = config.search(q)
        out.latencies_ms.append((time.perf_counter() - started) * 1000)
        relevant = corpus.relevant_rows(q)
        if not relevant:
            out.unanswerable += 1
            out.abstained_right += answer.abstained
        else:
            out.abstained_wrong += answer.abstained
            out.answers.append((q.type, recall_at_k(answer.rows, relevant, k), reciprocal_rank(answer.rows, relevant, k)))
            stale = corpus.stale_rows(q)
            if stale:
                out.stale_first.append(_stale_first(answer.rows[:k], relevant, stale))
        if config.vector_only:
            sims, kth = exact_threshold(corpus.vectors, qv, k)
            out.exact.append(sum(1 for r in answer.rows[:k] if sims[r] >= kth - 1e-5) / k)
    return out


def _stale_first(got: Sequence[int], current: Sequence[int], stale: Sequence[int]) -> bool:
    """A superseded version ranks before the current one, or is there while the current is not.

    The same rule as `evals.memory.run`; a peer keeps every version as a row of its own.
    """
    rank = {row: i for i, row in reversed(list(enumerate(got)))}
    best_current = min((rank[r] for r in current if r in rank), default=len(got))
    return any(rank.get(r, len(got)) < best_current for r in stale)


def run_corpus(corpus: Corpus, engines: Sequence[str], embedder: Embedder, *, k: int, warmup: int,
               workdir: Path, console: Console, keep: bool, history: HistoryMode) -> CorpusRun:
    """Build every engine from ``corpus`` in turn, measure each of its configurations, clean up."""
    run = CorpusRun(corpus.name, corpus.note or corpus.name, len(corpus.memories), len(corpus.questions))
    query_vectors = embed_all(embedder, [q.question for q in corpus.questions])
    for name in engines:
        engine: Engine = make_engine(name, embedder, k, history)
        where = workdir / name
        where.mkdir(parents=True, exist_ok=True)
        try:
            with console.status(f"{corpus.name}: building {name}"):
                builds: list[Build] = engine.build(corpus, where)
            for build in builds:
                run.builds.append(BuildSummary(build.engine, len(corpus.memories), build.seconds, build.size_bytes,
                                               build.note))
                for config in build.configs:
                    with console.status(f"{corpus.name}: {config.name}"):
                        run.scored.append(measure(config, build.engine, corpus, query_vectors, k, warmup))
            console.print(f"[dim]{corpus.name}: {name} done[/dim]")
        finally:
            engine.close()
            if not keep:
                shutil.rmtree(where, ignore_errors=True)
    return run


# ---- reporting -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures depend on: CPU, cores, load, Python and the engines' versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("lancedb", "chromadb", "pyarrow", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "-"
    load = os.getloadavg()
    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
        "load_at_start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "versions": ", ".join(f"{d} {v}" for d, v in versions.items()),
    }


def _cell(s: Scored, qtype: str) -> str:
    recall, mrr, n = s.score(qtype)
    return f"{recall:.2f} / {mrr:.2f}" if n else "-"


def _quality_grid(run: CorpusRun) -> tuple[list[str], list[list[str]], dict[int, set[int]]]:
    """A row per configuration: recall/MRR per question type, abstention, latency.

    Returns the headers, the rows and, per recall column, the rows with the best recall (ties).
    """
    types = [ALL, *run.types()]
    first = run.scored[0] if run.scored else Scored("", "")
    headers = ["search", *(f"{t} ({first.score(t)[2]})" for t in types)]
    rows = [[s.config, *(_cell(s, t) for t in types)] for s in run.scored]
    best: dict[int, set[int]] = {}
    for col, t in enumerate(types, start=1):
        recalls = [round(s.score(t)[0], 2) for s in run.scored]
        best[col] = {i for i, r in enumerate(recalls) if r == max(recalls) > 0}
    if first.unanswerable:
        headers.append(f"abstains, nothing relevant ({first.unanswerable})")
        for row, s in zip(rows, run.scored, strict=True):
            row.append(f"{s.abstained_right / s.unanswerable:.2f}")
    if first.stale_first:
        headers.append(f"update: stale first ({len(first.stale_first)})")
        for row, s in zip(rows, run.scored, strict=True):
            row.append(f"{sum(s.stale_first) / len(s.stale_first):.2f}")
    if any(s.abstained_wrong for s in run.scored) and first.answers:
        headers.append("abstains, answerable")
        for row, s in zip(rows, run.scored, strict=True):
            row.append(f"{s.abstained_wrong / len(s.answers):.2f}")
    headers.append("p50 / p95 ms")
    for row, s in zip(rows, run.scored, strict=True):
        row.append(f"{s.p50:.1f} / {s.p95:.1f}")
    return headers, rows, best


def quality_table(run: CorpusRun, k: int) -> Table:
    table = Table(title=f"{run.name}: {run.memories:,} memories, {run.questions} questions",
                  caption=f"cells: recall@{k} / MRR (best recall in bold)")
    headers, rows, best = _quality_grid(run)
    for i, head in enumerate(headers):  # two-line headers keep the table within a wide terminal
        table.add_column(head.replace(" (", "\n(").replace(", ", ",\n").replace("update: ", "update:\n"),
                         justify="left" if i == 0 else "right", no_wrap=True)
    for r, row in enumerate(rows):
        table.add_row(*[f"[bold]{c}[/bold]" if r in best.get(i, ()) else c for i, c in enumerate(row)])
    return table


def _scale_rows(run: CorpusRun) -> list[list[str]]:
    builds = {b.engine: b for b in run.builds}
    rows = []
    for s in run.scored:
        b = builds[s.build]
        recall, mrr, _ = s.score()
        exact = s.exactness
        rows.append([s.config, f"{b.rate:,.0f}", f"{b.seconds:.1f}", f"{b.size_bytes / 1e6:.0f}", f"{s.p50:.1f}",
                     f"{s.p95:.1f}", f"{recall:.3f}", f"{mrr:.3f}", "-" if exact is None else f"{exact:.3f}"])
    return rows


_SCALE_HEAD = ["engine / search", "ingest /s", "build s", "disk MB", "p50 ms", "p95 ms", "recall@5", "MRR",
               "top-5 exact"]


def scale_table(run: CorpusRun) -> Table:
    table = Table(title=f"At scale: {run.note}",
                  caption="ingest: corpus in memory → searchable store, index builds included, embedding excluded; "
                          "latency: query embedding included; top-5 exact: share of a vector search's top 5 that "
                          "reach the exact top-5 cosine")
    for i, head in enumerate(_SCALE_HEAD):
        table.add_column(head, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in _scale_rows(run):
        table.add_row(*row)
    return table


def markdown_header(info: dict[str, str], command: str) -> str:
    return (f"`{command}`\n\nMachine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, load average "
            f"at start {info['load_at_start']}, at end {info.get('load_at_end', '?')}; {info['versions']}; "
            f"{info.get('seconds', '?')} s in all.\n")


def quality_markdown(run: CorpusRun, k: int) -> str:
    """A quality table (configurations × question types) as markdown."""
    headers, rows, best = _quality_grid(run)
    out = [f"**{run.name}** ({run.memories:,} memories, {run.questions} questions; recall@{k} / MRR, best "
           "recall in bold):", "", "| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
    for r, row in enumerate(rows):
        out.append("| " + " | ".join(f"**{c}**" if r in best.get(i, ()) else c for i, c in enumerate(row)) + " |")
    return "\n".join(out) + "\n"


def scale_markdown(run: CorpusRun) -> str:
    out = [f"**At scale**: {run.note} ({run.questions} questions):", "",
           "| " + " | ".join(_SCALE_HEAD) + " |", "|---|" + "---:|" * (len(_SCALE_HEAD) - 1)]
    out += ["| " + " | ".join(row) + " |" for row in _scale_rows(run)]
    return "\n".join(out) + "\n"


def pooled(runs: Sequence[CorpusRun]) -> CorpusRun:
    """Every corpus's questions together (configs matched by name), for a one-table summary."""
    out = CorpusRun(f"all {len(runs)} corpora pooled", "", sum(r.memories for r in runs), sum(r.questions for r in runs))
    names = [s.config for s in runs[0].scored]
    for name in names:
        parts = [s for r in runs for s in r.scored if s.config == name]
        if len(parts) != len(runs):
            continue
        merged = Scored(name, parts[0].build)
        for p in parts:
            merged.answers += p.answers
            merged.unanswerable += p.unanswerable
            merged.abstained_right += p.abstained_right
            merged.abstained_wrong += p.abstained_wrong
            merged.latencies_ms += p.latencies_ms
            merged.exact += p.exact
            merged.stale_first += p.stale_first
        out.scored.append(merged)
    return out


# ---- the command -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, action="append",
                        help="an eval data directory (repeatable); default: every one under evals/memory/")
    parser.add_argument("--scale", type=int, default=100_000, help="memories in the scale run (0 skips it)")
    parser.add_argument("--scale-data", type=Path, help="the corpus padded for the scale run (default: the first)")
    parser.add_argument("--pad", choices=["other", "same"], default="other",
                        help="pad with the eval's other generator (disjoint names; default) or the corpus's own")
    parser.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20, help="untimed questions before each configuration")
    parser.add_argument("--history", choices=["auto", "temporal"], default="auto",
                        help="auto: Colony's recall decides when to look at superseded memories (default); "
                             "temporal: pass include_history=True on temporal questions, as evals.memory.run does")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--workdir", type=Path, help="build the stores here and keep them (default: a temp dir)")
    args = parser.parse_args(argv)
    forbid_network()  # before any engine is imported (they import lazily): the switches are read then
    console = Console(width=max(220, shutil.get_terminal_size().columns))  # wide tables, also when piped

    missing = [PEER_MODULES[e] for e in args.engines if e in PEER_MODULES and importlib.util.find_spec(PEER_MODULES[e]) is None]
    if missing:
        console.print(f"[red]error:[/red] {', '.join(missing)} not installed. The peers are an optional extra: "
                      "[bold].venv/bin/pip install -e '.\\[bench-peers]'[/bold]")
        return 2
    dirs: list[Path] = args.data or discover(EVAL_ROOT)
    if not dirs:
        console.print(f"[red]error:[/red] no eval data under {EVAL_ROOT}; pass --data DIR")
        return 2
    info = machine()
    command = " ".join(["python", "bench/bench_memory_peers.py", *(argv if argv is not None else sys.argv[1:])])
    started = time.perf_counter()
    embedder = load_embedder("static")
    quality: list[CorpusRun] = []
    scale: CorpusRun | None = None
    with tempfile.TemporaryDirectory(prefix="colony-peers-") as tmp:
        root = args.workdir or Path(tmp)
        keep = args.workdir is not None
        corpora = []
        for i, path in enumerate(dirs):
            corpus = load(path, embedder)
            corpora.append(corpus)
            run = run_corpus(corpus, args.engines, embedder, k=args.k, warmup=args.warmup,
                             workdir=root / f"q{i}", console=console, keep=keep, history=args.history)
            quality.append(run)
            console.print(quality_table(run, args.k))
        if len(quality) > 1:
            console.print(quality_table(pooled(quality), args.k))
        if args.scale > 0:
            base = next((c for c in corpora if args.scale_data and c.path and c.path.resolve() == args.scale_data.resolve()),
                        None) or (load(args.scale_data, embedder) if args.scale_data else corpora[0])
            with console.status(f"padding {base.name} to {args.scale:,} memories"):
                big = padded(base, args.scale, embedder, args.pad)
            scale = run_corpus(big, args.engines, embedder, k=args.k, warmup=args.warmup, workdir=root / "scale",
                               console=console, keep=keep, history=args.history)
            console.print(scale_table(scale))
            console.print(quality_table(scale, args.k))
    load_end = os.getloadavg()
    info["load_at_end"] = f"{load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}"
    info["seconds"] = f"{time.perf_counter() - started:.0f}"
    console.print(f"{info['cpu']}, {info['cores']} cores, Python {info['python']}; load {info['load_at_start']} → "
                  f"{info['load_at_end']}; {info['versions']}; {info['seconds']} s")
    if args.markdown:
        runs = [*quality, pooled(quality)] if len(quality) > 1 else quality
        parts = [markdown_header(info, command), *(quality_markdown(r, args.k) for r in runs)]
        if scale is not None:
            parts += [scale_markdown(scale), quality_markdown(scale, args.k)]
        args.markdown.write_text("\n".join(parts), encoding="utf-8")
    if args.json:
        payload = {"machine": info, "command": command, "k": args.k,
                   "corpora": [asdict(r) for r in quality], "scale": asdict(scale) if scale else None}
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
