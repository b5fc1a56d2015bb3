"""Run the memory retrieval eval: each recall channel alone, then all three fused.

Run: ``python -m evals.memory.run [--data evals/memory/data] [--embedder static|minilm] [--json]``

The corpus goes into a fresh node database in a temporary directory through the public
`colony.memory.Memory` API (`add_many` in batches), so the eval measures exactly what an agent
gets. Every question is then recalled four times (keyword, semantic, graph, fused) at k=5 and
scored with recall@k and MRR, over the whole set and per question type (see `generate` for what
each type tests). Progress goes to stderr, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from evals.memory.generate import DEFAULT_DATA
from evals.memory.metrics import EvalReport, QuestionResult, recall_at_k, reciprocal_rank, summarise

if TYPE_CHECKING:
    from colony.memory import Memory
    from colony.memory.embed import Embedder
    from colony.memory.models import Channel

__all__ = ["CONFIGS", "Question", "evaluate", "ingest", "load_corpus", "main", "render", "run_eval"]

#: The configurations compared: each channel alone, then the fusion of all three.
CONFIGS: dict[str, frozenset[Channel]] = {
    "keyword": frozenset({"keyword"}),
    "semantic": frozenset({"semantic"}),
    "graph": frozenset({"graph"}),
    "fused": frozenset({"keyword", "semantic", "graph"}),
}
BATCH = 200
Tick = Callable[[], None]


class Question(BaseModel):
    id: str
    type: str
    question: str
    relevant: list[str]


def load_corpus(data: Path) -> tuple[list[dict[str, Any]], list[Question]]:
    """Read memories.jsonl and questions.jsonl from a generated data directory."""
    missing = [n for n in ("memories.jsonl", "questions.jsonl") if not (data / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{data} has no {', '.join(missing)}; run `python -m evals.memory.generate --out {data}`")
    memories = [json.loads(line) for line in (data / "memories.jsonl").read_text(encoding="utf-8").splitlines() if line]
    questions = [Question.model_validate_json(line)
                 for line in (data / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return memories, questions


def ingest(memory: Memory, memories: Sequence[Mapping[str, Any]], *, batch: int = BATCH,
           tick: Callable[[int], None] | None = None) -> dict[str, int]:
    """Store the corpus with `add_many`; return corpus key → memory id."""
    from colony.memory.models import MemoryIn

    key_to_id: dict[str, int] = {}
    for start in range(0, len(memories), batch):
        rows = memories[start:start + batch]
        ids = memory.add_many([MemoryIn.model_validate({k: v for k, v in r.items() if k != "key"}) for r in rows])
        if len(ids) != len(rows):
            raise RuntimeError(f"add_many returned {len(ids)} ids for {len(rows)} memories")
        key_to_id.update(zip((str(r["key"]) for r in rows), ids, strict=True))
        if tick:
            tick(len(rows))
    return key_to_id


def evaluate(memory: Memory, questions: Sequence[Question], key_to_id: Mapping[str, int], *, k: int = 5,
             configs: Mapping[str, frozenset[Channel]] = CONFIGS, tick: Tick | None = None) -> EvalReport:
    """Recall every question under every configuration and score the top `k`."""
    # Reading must not change what later reads see: skip the last-accessed update where the API allows.
    extra: dict[str, Any] = {"touch": False} if "touch" in inspect.signature(memory.recall).parameters else {}
    rows: list[QuestionResult] = []
    latencies: dict[str, list[float]] = {c: [] for c in configs}
    down: dict[str, dict[str, str]] = {}
    for q in questions:
        relevant = [key_to_id[key] for key in q.relevant]
        recall: dict[str, float] = {}
        first: dict[str, int | None] = {}
        for name, channels in configs.items():
            t0 = time.perf_counter()
            result = memory.recall(q.question, k=k, channels=set(channels), explain=False, **extra)
            latencies[name].append((time.perf_counter() - t0) * 1000)
            for channel, reason in result.channels_down.items():
                down.setdefault(name, {})[channel] = reason
            got = [hit.memory.id for hit in result.hits]
            recall[name] = recall_at_k(got, relevant, k)
            rr = reciprocal_rank(got, relevant, k)
            first[name] = round(1 / rr) if rr else None
        rows.append(QuestionResult(id=q.id, type=q.type, recall=recall, first_rank=first))
        if tick:
            tick()
    return summarise(rows, list(configs), latencies, down, k=k, memories=len(key_to_id))


def _ticker(progress: Progress | None, task: TaskID | None) -> Callable[[int], None]:
    def tick(n: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, n)

    return tick


def run_eval(memories: Sequence[Mapping[str, Any]], questions: Sequence[Question], embedder: Embedder | None, *,
             k: int = 5, progress: Progress | None = None) -> EvalReport:
    """Load the corpus into a fresh temporary node database and evaluate it."""
    from colony.config import Settings
    from colony.memory import Memory
    from colony.store import open_database

    with tempfile.TemporaryDirectory(prefix="colony-memory-eval-") as tmp:
        settings = Settings(home=Path(tmp), workspace=Path(tmp))
        db = open_database(settings.db_path)
        try:
            memory = Memory(db, settings, embedder)
            ingest_task = progress.add_task("ingesting", total=len(memories)) if progress else None
            started = time.perf_counter()
            key_to_id = ingest(memory, memories, tick=_ticker(progress, ingest_task))
            ingest_seconds = time.perf_counter() - started
            query_task = progress.add_task("querying", total=len(questions)) if progress else None
            advance = _ticker(progress, query_task)
            report = evaluate(memory, questions, key_to_id, k=k, tick=lambda: advance(1))
        finally:
            db.close()
    return report.model_copy(update={"embedder": embedder.name if embedder else None,
                                     "ingest_seconds": round(ingest_seconds, 2)})


def render(report: EvalReport, console: Console) -> None:
    """The report as a Rich table: a row per question type, a column per configuration."""
    configs = report.configs
    types = list(next(iter(configs.values())).by_type) if configs else []
    table = Table(title=f"Memory recall eval: {report.memories} memories, {report.questions} questions, "
                        f"embedder {report.embedder or 'none'}",
                  caption=f"cells: recall@{report.k}  MRR (best recall in bold)")
    table.add_column("questions", no_wrap=True)
    for name, c in configs.items():
        table.add_column(name + (" [red](down)[/red]" if c.down else ""), justify="right", no_wrap=True)
    for row in ["all", *types]:
        scores = {name: c.overall if row == "all" else c.by_type[row] for name, c in configs.items()}
        best = max(s.recall for s in scores.values())
        cells = [f"{s.recall:.2f}  {s.mrr:.2f}" for s in scores.values()]
        cells = [f"[bold]{cell}[/bold]" if s.recall == best else cell for cell, s in zip(cells, scores.values(), strict=True)]
        n = next(iter(scores.values())).n
        table.add_row(f"{row} ({n})", *cells, end_section=row == "all")
    table.add_row("ms p50 p95", *[f"{c.latency_ms_p50:.1f}  {c.latency_ms_p95:.1f}" for c in configs.values()],
                  style="dim")
    console.print(table)
    if report.ingest_seconds is not None:
        console.print(f"ingest: {report.ingest_seconds:.1f} s for {report.memories} memories (add_many, batches of {BATCH})")
    for name, c in configs.items():
        for channel, reason in c.down.items():
            console.print(f"[yellow]{name}: the {channel} channel was down: {reason}[/yellow]")


def _fail(message: str) -> int:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.memory.run", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a directory written by evals.memory.generate")
    parser.add_argument("--embedder", choices=["static", "minilm"], default="static")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = parser.parse_args(argv)
    try:
        from colony.memory import Memory  # noqa: F401 - checks the API exists before any work
        from colony.memory.embed import EmbeddingUnavailable, load_embedder
    except ImportError as exc:
        return _fail(f"the Memory API (colony.memory.Memory) is not available: {exc}. "
                     "This eval needs the memory capability of issue 3.")
    try:
        memories, questions = load_corpus(args.data)
    except FileNotFoundError as exc:
        return _fail(str(exc))
    kind: Literal["static", "minilm"] = args.embedder
    try:
        embedder = load_embedder(kind)
    except EmbeddingUnavailable as exc:
        return _fail(f"cannot load the {kind} embedder: {exc}")
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        report = run_eval(memories, questions, embedder, k=args.k, progress=progress)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        render(report, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
