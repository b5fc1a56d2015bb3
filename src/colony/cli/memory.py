"""`colony memory`: the node's long-term memory from the command line.

Every command opens the node database from settings (as `colony history` does) and the memory
through `open_memory`, so what it sees is exactly what the agent and the server see. Reads take
``--json``; a person gets Rich tables. Errors name the fix and exit with `ExitCode` values: 1 for
"no such memory" or invalid input, 3 when the embedding model is needed and missing, 4 when the
database cannot be opened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, cast

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, err, fail, load, out, print_json, reporting
from colony.memory import IngestReport, Memory, MemoryIn, MemoryItem, RecallResult, open_memory
from colony.memory.models import Channel
from colony.store import open_database

__all__ = ["IMPORT_BATCH", "memory_app", "parse_duration"]

#: Memories per `Memory.ingest` call during an import (one transaction, one embedding batch each).
IMPORT_BATCH = 256
#: Invalid import lines listed one by one; beyond this only the count is printed.
MAX_LISTED_ERRORS = 20
CONTENT_PREVIEW = 300

memory_app = typer.Typer(
    name="memory",
    help=(
        "The node's long-term memory: add, recall, correct and forget memories, review contradictions, "
        "import and export JSONL.\n\n"
        "Recall runs three channels — keyword (BM25), semantic (embeddings) and graph (entities) — "
        "and says which found each memory."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


class MemoryTypeOpt(StrEnum):
    fact = "fact"
    event = "event"
    preference = "preference"
    summary = "summary"
    procedure = "procedure"


class SensitivityOpt(StrEnum):
    public = "public"
    internal = "internal"
    confidential = "confidential"
    restricted = "restricted"


class ChannelOpt(StrEnum):
    keyword = "keyword"
    semantic = "semantic"
    graph = "graph"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``2w``, ``90s`` → a timedelta (raises ValueError otherwise)."""
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration; use a positive number and a unit: 90s, 30m, 12h, 7d, 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _duration_option(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@contextmanager
def _memory() -> Iterator[Memory]:
    """The node's memory for one command; Colony errors become a message and an exit code."""
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            yield open_memory(db, settings)
        finally:
            db.close()


def _one_line(text: str, limit: int = CONTENT_PREVIEW) -> str:
    flat = " ".join(text.split())
    return escape(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def _input_error(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())


def _build(content: str, **fields: Any) -> MemoryIn:
    try:
        return MemoryIn(content=content, **{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        fail(f"invalid memory: {_input_error(exc)}", ExitCode.FAILED,
             "a memory is one non-blank fact of at most 64,000 characters; confidence is between 0 and 1")


def _report_ingest(report: IngestReport) -> None:
    """Say plainly when a memory is not in every channel or contradicts another one."""
    if report.unembedded:
        err.print(f"[yellow]warning:[/] stored without a vector — the semantic channel will not find it until "
                  f"`colony memory reindex` ({escape(report.embed_error or 'embedding model unavailable')})",
                  highlight=False)
    for new, old in report.flagged:
        err.print(f"[yellow]flagged:[/] memory {new} contradicts memory {old}; both wait in `colony memory review`",
                  highlight=False)


# -- writing ----------------------------------------------------------------------------------------


@memory_app.command()
def add(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The memory: one self-contained fact, in a full sentence.")],
    memory_type: Annotated[MemoryTypeOpt, typer.Option("--type", "-t", help="What kind of memory.")] = MemoryTypeOpt.fact,
    confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="How sure, 0 to 1.")] = 0.7,
    user_stated: Annotated[bool, typer.Option("--user-stated", help="A person said so (ranks above inferences).")] = False,
    sensitivity: Annotated[SensitivityOpt, typer.Option(help="restricted memories never enter a model's context.")] = (
        SensitivityOpt.internal
    ),
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="Forget after this long: 90s, 30m, 12h, 7d, 2w.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {id, unembedded, flagged} as JSON.")] = False,
) -> None:
    """Store a memory and print its id.

    Examples:

        colony memory add "The staging database runs on db-2.internal."

        colony memory add "Alice prefers short answers." --type preference --user-stated

        colony memory add "The office is closed today." --type event --expires-in 1d
    """
    ttl = _duration_option(expires_in)
    item = _build(text, memory_type=memory_type.value, confidence=confidence,
                  verified="user_stated" if user_stated else "inferred", sensitivity=sensitivity.value,
                  expires_at=datetime.now(UTC) + ttl if ttl else None, source_kind="user")
    with _memory() as mem:
        report = mem.ingest([item])
    if as_json:
        print_json({"id": report.ids[0], "unembedded": bool(report.unembedded),
                    "flagged": [other for _, other in report.flagged]})
        return
    _report_ingest(report)
    print(report.ids[0])


@memory_app.command()
def correct(
    memory_id: Annotated[int, typer.Argument(metavar="ID", help="The memory to correct.")],
    text: Annotated[str, typer.Argument(metavar="TEXT", help="What is true instead.")],
    user_stated: Annotated[bool, typer.Option("--user-stated", help="A person said so.")] = False,
    confidence: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Default: the old memory's.")] = None,
) -> None:
    """Replace a memory with a corrected one; the old one stays in its history.

    Examples:

        colony memory correct 12 "The staging database moved to db-3.internal."

        colony memory history 12
    """
    with _memory() as mem:
        old = mem.get(memory_id)
        if old is None:
            fail(f"no memory {memory_id}", ExitCode.FAILED, "find ids with: colony memory recall QUERY")
        new = _build(text, memory_type=old.memory_type, sensitivity=old.sensitivity,
                     confidence=confidence if confidence is not None else old.confidence,
                     verified="user_stated" if user_stated else old.verified, source_kind="user")
        new_id = mem.correct(memory_id, new)
    out.print(f"memory {memory_id} corrected by {new_id}", highlight=False)


@memory_app.command()
def forget(memory_id: Annotated[int, typer.Argument(metavar="ID", help="The memory to remove.")]) -> None:
    """Remove a memory from every channel (keyword, semantic and graph). This cannot be undone.

    Examples:

        colony memory forget 12
    """
    with _memory() as mem:
        removed = mem.forget(memory_id)
    if not removed:
        fail(f"no memory {memory_id}", ExitCode.FAILED, "find ids with: colony memory recall QUERY")
    out.print(f"forgot memory {memory_id}", highlight=False)


# -- reading ----------------------------------------------------------------------------------------


def _found_by(result: RecallResult, index: int) -> str:
    return " · ".join(f"{c.channel} #{c.rank}" for c in result.hits[index].channels)


@memory_app.command()
def recall(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for, in plain words.")],
    k: Annotated[int, typer.Option("-k", "--limit", min=1, max=100, help="How many memories.")] = 5,
    channel: Annotated[list[ChannelOpt] | None, typer.Option(
        "--channel", "-c", help="Only these channels (repeat the option); default all three.")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show which channels found each memory, and timings.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result, explanations included.")] = False,
) -> None:
    """Find the memories most relevant to a query.

    Examples:

        colony memory recall "staging database"

        colony memory recall "who owns billing?" -k 10 --explain

        colony memory recall "INC-48213" --channel keyword --json
    """
    if not query.strip():
        fail("the query is blank", ExitCode.USAGE, 'say what to look for: colony memory recall "staging database"')
    wanted = cast("set[Channel]", {c.value for c in channel}) if channel else None
    with _memory() as mem:
        result = mem.recall(query, k=k, channels=wanted, explain=True)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    for name, reason in result.channels_down.items():
        err.print(f"[yellow]warning:[/] the {name} channel is down: {escape(reason)}", highlight=False)
    if not result.hits:
        err.print("no memories match", highlight=False)
        return
    table = Table(title=f"recall: {_one_line(result.query, 80)}", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("id", justify="right")
    table.add_column("score", justify="right")
    if explain:
        table.add_column("found by", no_wrap=True)
    table.add_column("content", overflow="fold")
    for i, hit in enumerate(result.hits):
        row = [str(i + 1), str(hit.memory.id), f"{hit.score:.4f}"]
        if explain:
            row.append(_found_by(result, i))
        table.add_row(*row, _one_line(hit.memory.content))
    out.print(table)
    if explain:
        if result.expanded_entities:
            out.print(f"expanded entities: {escape(', '.join(result.expanded_entities))}", highlight=False)
        if result.channel_weights:
            weights = " · ".join(f"{name} ×{w:g}" for name, w in sorted(result.channel_weights.items()))
            coverage = "" if result.keyword_coverage is None else f" (keyword coverage {result.keyword_coverage:.2f})"
            out.print(f"channel weights for this query: {weights}{coverage}", highlight=False)
        timings = " · ".join(f"{name} {ms:.1f} ms" for name, ms in result.timings_ms.items())
        out.print(f"[dim]timings: {timings}[/]", highlight=False)


def _items_table(title: str, items: list[MemoryItem], *, chain: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("id", "created (UTC)", "type", "verified", "conf", "status" if chain else "review"):
        table.add_column(name, justify="right" if name in ("id", "conf") else "left", no_wrap=True)
    table.add_column("content", overflow="fold", min_width=24)
    for it in items:
        if chain:
            status = f"corrected by {it.superseded_by}" if it.superseded_by else "[green]current[/]"
        else:
            status = "[yellow]needs review[/]" if it.needs_review else ""
        table.add_row(str(it.id), it.created_at[:19].replace("T", " "), it.memory_type, it.verified,
                      f"{it.confidence:.2f}", status, _one_line(it.content))
    return table


@memory_app.command()
def history(
    memory_id: Annotated[int, typer.Argument(metavar="ID", help="Any memory of the chain.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a memory's correction chain, oldest first.

    Examples:

        colony memory history 12

        colony memory history 12 --json
    """
    with _memory() as mem:
        if mem.get(memory_id) is None:
            fail(f"no memory {memory_id}", ExitCode.FAILED, "find ids with: colony memory recall QUERY")
        chain = mem.history(memory_id)
    if as_json:
        print_json({"items": [m.model_dump(mode="json") for m in chain]})
        return
    out.print(_items_table(f"history of memory {memory_id}", chain, chain=True))


@memory_app.command()
def review(
    resolve: Annotated[int | None, typer.Option("--resolve", metavar="ID", help="Mark this memory as reviewed.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Rows to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List memories flagged as contradicting each other, or resolve one.

    Resolve a flag after deciding: keep both (--resolve), `correct` the wrong one, or `forget` it.

    Examples:

        colony memory review

        colony memory review --resolve 12
    """
    with _memory() as mem:
        if resolve is not None:
            if not mem.resolve_review(resolve):
                fail(f"no memory {resolve}", ExitCode.FAILED, "list flagged memories with: colony memory review")
            if as_json:
                print_json({"id": resolve, "needs_review": False})
            else:
                out.print(f"memory {resolve} reviewed", highlight=False)
            return
        items = mem.review_queue(limit)
    if as_json:
        print_json({"items": [m.model_dump(mode="json") for m in items]})
        return
    if not items:
        out.print("nothing to review", highlight=False)
        return
    out.print(_items_table("memories to review (contradictions)", items))


@memory_app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Counts of the memory store: active, superseded, expired, flagged, unembedded, graph size.

    Examples:

        colony memory stats

        colony memory stats --json
    """
    with _memory() as mem:
        figures = mem.stats()
        embed_error = mem.embedder_error
    if as_json:
        print_json({**figures.model_dump(mode="json"), "embedder_error": embed_error})
        return
    table = Table(title="memory", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for name in ("active", "total", "superseded", "expired", "needs_review", "unembedded", "triples", "entities"):
        table.add_row(name.replace("_", " "), str(getattr(figures, name)))
    for kind, n in sorted(figures.by_type.items()):
        table.add_row(f"  {kind}", str(n))
    table.add_row("embedder", escape(figures.embedder) if figures.embedder
                  else f"[yellow]none[/] — {escape(embed_error or 'not configured')}")
    out.print(table)


@memory_app.command()
def curate(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Expire, collapse exact duplicates and decay unverified confidence; print what changed.

    Examples:

        colony memory curate
    """
    with _memory() as mem:
        report = mem.curate()
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    out.print(f"expired {report.expired} · duplicates removed {report.duplicates_removed} · "
              f"decayed {report.decayed} (over {report.decay_days:g} days)", highlight=False)


@memory_app.command()
def reindex() -> None:
    """Embed the memories stored while the embedding model was unavailable.

    Examples:

        colony memory reindex
    """
    with _memory() as mem:
        if mem.embedder is None:
            fail(f"no embedding model: {mem.embedder_error or 'not configured'}", ExitCode.CONFIG,
                 "set COLONY_MEMORY_EMBEDDER=static (shipped with Colony) or install the minilm model")
        fixed = mem.reindex()
    out.print(f"embedded {fixed} memor{'y' if fixed == 1 else 'ies'}", highlight=False)
