"""Run the memory retrieval eval: each recall channel alone, then all three fused.

Run: ``python -m evals.memory.run [--data evals/memory/data] [--embedder static|minilm] [--json]``
(``--data evals/memory/data_civic`` or ``data_mixed`` for the other corpora; ``--generator civic
--seed 21`` scores a corpus generated in memory, e.g. on a seed nothing was tuned on).

The corpus goes into a fresh node database in a temporary directory through the public
`colony.memory.Memory` API (`add_many` in batches, then `correct` for each row that supersedes
another), so the eval measures exactly what an agent gets. Every question is then recalled four
times (keyword, semantic, graph, fused) at k=5 and scored with recall@k and MRR, over the whole
set and per question type (see `generate` and `civic` for what each type tests). Temporal
questions ask about a superseded memory, so they are recalled with ``include_history=True`` when
the API has that option. Abstention questions are scored from ``RecallResult.abstained`` when the
API reports it, and marked unavailable otherwise. Progress goes to stderr, so ``--json`` output
on stdout stays clean.
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
from evals.memory.metrics import EvalReport, QuestionResult, Score, recall_at_k, reciprocal_rank, summarise

if TYPE_CHECKING:
    from colony.memory import Memory
    from colony.memory.embed import Embedder
    from colony.memory.models import Channel

__all__ = ["CONFIGS", "HistoryMode", "Question", "evaluate", "ingest", "load_corpus", "main", "render", "run_eval"]

#: The configurations compared: each channel alone, then the fusion of all three.
CONFIGS: dict[str, frozenset[Channel]] = {
    "keyword": frozenset({"keyword"}),
    "semantic": frozenset({"semantic"}),
    "graph": frozenset({"graph"}),
    "fused": frozenset({"keyword", "semantic", "graph"}),
}
BATCH = 200
Tick = Callable[[], None]
#: "temporal": recall temporal questions with include_history=True (the default); "auto": never
#: pass the option, leaving it to the service to notice a question about the past.
HistoryMode = Literal["temporal", "auto"]


class Question(BaseModel):
    id: str
    type: str
    question: str
    #: The memories that answer it; empty when nothing stored does (type "abstention").
    relevant: list[str]
    #: Knowledge updates: the older versions of the relevant memory, which must not outrank it.
    superseded: list[str] = []
    hops: int | None = None
    absent: list[str] = []
    source: str | None = None


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
    """Store the corpus; return corpus key → memory id.

    Rows without ``supersedes`` go in with `add_many`, in file order. Then each correction is
    recorded with `Memory.correct` on the memory it supersedes, so the store marks the old row
    as history exactly as it would for a user's correction (a chain A ← B ← C is applied in
    dependency order, whatever the file order).
    """
    from colony.memory.models import MemoryIn

    def memory_in(row: Mapping[str, Any]) -> MemoryIn:
        return MemoryIn.model_validate({k: v for k, v in row.items() if k in MemoryIn.model_fields})

    plain = [r for r in memories if not r.get("supersedes")]
    pending = [r for r in memories if r.get("supersedes")]
    key_to_id: dict[str, int] = {}
    for start in range(0, len(plain), batch):
        rows = plain[start:start + batch]
        ids = memory.add_many([memory_in(r) for r in rows])
        if len(ids) != len(rows):
            raise RuntimeError(f"add_many returned {len(ids)} ids for {len(rows)} memories")
        key_to_id.update(zip((str(r["key"]) for r in rows), ids, strict=True))
        if tick:
            tick(len(rows))
    while pending:
        ready = [r for r in pending if str(r["supersedes"]) in key_to_id]
        if not ready:
            raise ValueError(f"corrections of unknown memories: {sorted(str(r['supersedes']) for r in pending)[:5]}")
        for row in ready:
            key_to_id[str(row["key"])] = memory.correct(key_to_id[str(row["supersedes"])], memory_in(row))
        pending = [r for r in pending if str(r["key"]) not in key_to_id]
        if tick:
            tick(len(ready))
    return key_to_id


def _stale_first(got: Sequence[int], current: Sequence[int], stale: Sequence[int]) -> bool:
    """Whether a superseded version comes before the current one (or is there while it is not)."""
    rank = {mid: i for i, mid in reversed(list(enumerate(got)))}
    best_current = min((rank[m] for m in current if m in rank), default=len(got))
    return any(rank.get(m, len(got)) < best_current for m in stale)


def evaluate(memory: Memory, questions: Sequence[Question], key_to_id: Mapping[str, int], *, k: int = 5,
             configs: Mapping[str, frozenset[Channel]] = CONFIGS, tick: Tick | None = None,
             history: HistoryMode = "temporal") -> EvalReport:
    """Recall every question under every configuration and score the top `k`."""
    from colony.memory.models import RecallResult

    params = inspect.signature(memory.recall).parameters
    # Reading must not change what later reads see: skip the last-accessed update where the API allows.
    extra: dict[str, Any] = {"touch": False} if "touch" in params else {}
    can_see_history = "include_history" in params
    reports_abstention = "abstained" in RecallResult.model_fields
    reports_relevance = "relevance" in RecallResult.model_fields
    notes: list[str] = []
    if not reports_abstention and any(not q.relevant for q in questions):
        notes.append("RecallResult has no `abstained`: abstention is unavailable")
    if history == "temporal" and not can_see_history and any(q.type == "temporal" for q in questions):
        notes.append("recall has no include_history option: temporal questions were asked without history")
    rows: list[QuestionResult] = []
    latencies: dict[str, list[float]] = {c: [] for c in configs}
    down: dict[str, dict[str, str]] = {}
    for q in questions:
        relevant = [key_to_id[key] for key in q.relevant]
        stale = [key_to_id[key] for key in q.superseded]
        options = dict(extra)
        if history == "temporal" and q.type == "temporal" and can_see_history:
            options["include_history"] = True
        row = QuestionResult(id=q.id, type=q.type, recall={}, first_rank={}, answerable=bool(relevant), hops=q.hops)
        for name, channels in configs.items():
            t0 = time.perf_counter()
            result = memory.recall(q.question, k=k, channels=set(channels), explain=False, **options)
            latencies[name].append((time.perf_counter() - t0) * 1000)
            for channel, reason in result.channels_down.items():
                down.setdefault(name, {})[channel] = reason
            got = [hit.memory.id for hit in result.hits]
            row.abstained[name] = bool(result.abstained) if reports_abstention else None
            row.relevance[name] = float(result.relevance) if reports_relevance else None
            if relevant:
                row.recall[name] = recall_at_k(got, relevant, k)
                rr = reciprocal_rank(got, relevant, k)
                row.first_rank[name] = round(1 / rr) if rr else None
            if relevant and stale:
                row.stale_first[name] = _stale_first(got[:k], relevant, stale)
        rows.append(row)
        if tick:
            tick()
    return summarise(rows, list(configs), latencies, down, k=k, memories=len(key_to_id), notes=notes)


def _ticker(progress: Progress | None, task: TaskID | None) -> Callable[[int], None]:
    def tick(n: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, n)

    return tick


def run_eval(memories: Sequence[Mapping[str, Any]], questions: Sequence[Question], embedder: Embedder | None, *,
             k: int = 5, progress: Progress | None = None, history: HistoryMode = "temporal",
             configs: Mapping[str, frozenset[Channel]] = CONFIGS, database_url: str | None = None) -> EvalReport:
    """Load the corpus into a fresh temporary node database and evaluate it.

    ``database_url``: load it into that (empty) PostgreSQL database instead, through
    `colony.memory.pg_store.PgMemoryStore`: the same eval, on the engine a colony scales out on.
    """
    from colony.config import Settings
    from colony.memory import Memory
    from colony.store import open_database

    with tempfile.TemporaryDirectory(prefix="colony-memory-eval-") as tmp:
        settings = Settings(home=Path(tmp), workspace=Path(tmp))
        db: Any
        if database_url is not None:
            from colony.memory.pg_store import PgMemoryStore
            from colony.store.pg import open_pg

            db = open_pg(database_url, name="colony-memory-eval")
            store: Any = PgMemoryStore(db)
        else:
            db = store = open_database(settings.db_path)
        try:
            memory = Memory(store, settings, embedder)
            ingest_task = progress.add_task("ingesting", total=len(memories)) if progress else None
            started = time.perf_counter()
            key_to_id = ingest(memory, memories, tick=_ticker(progress, ingest_task))
            ingest_seconds = time.perf_counter() - started
            query_task = progress.add_task("querying", total=len(questions)) if progress else None
            advance = _ticker(progress, query_task)
            report = evaluate(memory, questions, key_to_id, k=k, tick=lambda: advance(1), history=history,
                              configs=configs)
        finally:
            db.close()
    return report.model_copy(update={"embedder": embedder.name if embedder else None,
                                     "ingest_seconds": round(ingest_seconds, 2)})


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render(report: EvalReport, console: Console) -> None:
    """The report as Rich tables: a row per question type, a column per configuration."""
    configs = report.configs
    first = next(iter(configs.values()), None)
    types = list(first.by_type) if first else []
    table = Table(title=f"Memory recall eval: {report.memories} memories, {report.questions} questions, "
                        f"embedder {report.embedder or 'none'}",
                  caption=f"cells: recall@{report.k}  MRR (best recall in bold)")
    table.add_column("questions", no_wrap=True)
    for name, c in configs.items():
        table.add_column(name + (" [red](down)[/red]" if c.down else ""), justify="right", no_wrap=True)
    rows: list[tuple[str, dict[str, Score]]] = [("all", {n: c.overall for n, c in configs.items()})]
    for qtype in types:
        rows.append((qtype, {n: c.by_type[qtype] for n, c in configs.items()}))
        if qtype == "multi_hop" and first is not None:
            rows += [(f"  {h} hops", {n: c.by_hops[h] for n, c in configs.items()}) for h in first.by_hops]
    for label, scores in rows:
        best = max(s.recall for s in scores.values())
        cells = [f"{s.recall:.2f}  {s.mrr:.2f}" for s in scores.values()]
        cells = [f"[bold]{cell}[/bold]" if s.recall == best else cell for cell, s in zip(cells, scores.values(), strict=True)]
        n = next(iter(scores.values())).n
        table.add_row(f"{label} ({n})", *cells, end_section=label == "all", style="dim" if label.startswith(" ") else None)
    if first is not None and first.stale_first is not None:
        table.add_row("update: stale first", *[_cell(c.stale_first) for c in configs.values()], style="dim")
    table.add_row("ms p50 p95", *[f"{c.latency_ms_p50:.1f}  {c.latency_ms_p95:.1f}" for c in configs.values()],
                  style="dim")
    console.print(table)
    abstention = {n: c.abstention for n, c in configs.items() if c.abstention is not None}
    if abstention:
        sample = next(iter(abstention.values()))
        if not sample.available:
            console.print(f"abstention ({sample.unanswerable} questions): unavailable, the Memory API does not "
                          "report `abstained`")
        else:
            held = Table(title=f"Abstention: {sample.unanswerable} unanswerable, {sample.answerable} answerable questions",
                         caption="positive = recall said nothing relevant; AUC of relevance, answerable above unanswerable")
            held.add_column("")
            for name in abstention:
                held.add_column(name, justify="right")
            for label, attr in (("precision", "precision"), ("recall", "recall"), ("accuracy", "accuracy"),
                                ("wrongly abstains", "false_abstention"), ("relevance AUC", "relevance_auc")):
                held.add_row(label, *[_cell(getattr(a, attr)) for a in abstention.values()])
            console.print(held)
    if report.ingest_seconds is not None:
        console.print(f"ingest: {report.ingest_seconds:.1f} s for {report.memories} memories (add_many, batches of {BATCH})")
    for note in report.notes:
        console.print(f"[yellow]note: {note}[/yellow]")
    for name, c in configs.items():
        for channel, reason in c.down.items():
            console.print(f"[yellow]{name}: the {channel} channel was down: {reason}[/yellow]")


def _fail(message: str) -> int:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    return 2


def main(argv: list[str] | None = None) -> int:
    from evals.memory.corpora import GENERATORS  # corpora imports this module: read it late

    parser = argparse.ArgumentParser(prog="python -m evals.memory.run", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a directory written by evals.memory.generate")
    parser.add_argument("--generator", choices=list(GENERATORS),
                        help="instead of --data: generate this corpus in memory (with --seed, --memories, --questions)")
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--memories", type=int, default=600, help="with --generator: total memories")
    parser.add_argument("--questions", type=int, default=100, help="with --generator: total questions")
    parser.add_argument("--embedder", choices=["static", "minilm"], default="static")
    parser.add_argument("--database-url", help="run on this empty PostgreSQL database (pgvector) instead of SQLite")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--history", choices=["temporal", "auto"], default="temporal",
                        help="temporal: recall temporal questions with include_history=True; "
                             "auto: never pass it (the service decides)")
    args = parser.parse_args(argv)
    try:
        from colony.memory import Memory  # noqa: F401 - checks the API exists before any work
        from colony.memory.embed import EmbeddingUnavailable, load_embedder
    except ImportError as exc:
        return _fail(f"the Memory API (colony.memory.Memory) is not available: {exc}. "
                     "This eval needs the memory capability of issue 3.")
    try:
        if args.generator:
            from evals.memory.corpora import build

            memories, questions = build(args.generator, args.seed, args.memories, args.questions)
        else:
            memories, questions = load_corpus(args.data)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    kind: Literal["static", "minilm"] = args.embedder
    try:
        embedder = load_embedder(kind)
    except EmbeddingUnavailable as exc:
        return _fail(f"cannot load the {kind} embedder: {exc}")
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        report = run_eval(memories, questions, embedder, k=args.k, progress=progress, history=args.history,
                          database_url=args.database_url)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        render(report, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
