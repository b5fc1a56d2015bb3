"""`colony memory import` and `colony memory export`: JSONL in and out.

Registered on the same `memory_app` as the other memory commands (`colony.cli.memory`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from colony.cli._common import ExitCode, err, fail, out, print_json
from colony.cli.memory import IMPORT_BATCH, MAX_LISTED_ERRORS, _input_error, _memory, memory_app
from colony.memory import MemoryIn

__all__ = ["export", "import_"]



def _parse_line(line: str) -> MemoryIn:
    """One JSONL line → a memory; ``source_kind`` defaults to "import". Raises ValueError."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError('not a JSON object; expected {"content": "...", ...}')
    data.setdefault("source_kind", "import")
    try:
        return MemoryIn.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_input_error(exc)) from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, line


@memory_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE.jsonl", help="One MemoryIn JSON object per line.")],
    strict: Annotated[bool, typer.Option("--strict", help="Import nothing if any line is invalid.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import memories from a JSONL file, in batches of 256.

    Each line is an object like {"content": "...", "memory_type": "fact", "confidence": 0.9,
    "verified": "user_stated"}; only "content" is required. Invalid lines are reported with their
    line number and skipped (with --strict, nothing is imported). `colony memory export` writes
    the same format.

    Examples:

        colony memory import facts.jsonl

        colony memory import facts.jsonl --strict
    """
    if not file.is_file():
        fail(f"no file {file}", ExitCode.FAILED, "pass the path of a .jsonl file (one JSON object per line)")
    # Pass 1 checks every line without holding the file in memory; pass 2 streams the imports.
    errors: list[tuple[int, str]] = []
    valid = 0
    try:
        for number, line in _lines(file):
            try:
                _parse_line(line)
                valid += 1
            except ValueError as exc:
                errors.append((number, str(exc)))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", ExitCode.FAILED, "check the path and its permissions")
    for number, message in errors[:MAX_LISTED_ERRORS]:
        err.print(f"[red]line {number}:[/] {escape(message)}", highlight=False)
    if len(errors) > MAX_LISTED_ERRORS:
        err.print(f"… and {len(errors) - MAX_LISTED_ERRORS} more invalid lines", highlight=False)
    if strict and errors:
        fail(f"{len(errors)} invalid line{'s' if len(errors) != 1 else ''}; nothing was imported (--strict)",
             ExitCode.FAILED, "fix the lines above, or drop --strict to skip them")
    summary = {"imported": 0, "skipped": len(errors), "unembedded": 0, "flagged": 0}
    with _memory() as mem, Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, disable=as_json or valid == 0, transient=False,
    ) as progress:
        task = progress.add_task("import", total=valid)
        batch: list[MemoryIn] = []

        def flush() -> None:
            report = mem.ingest(batch)
            summary["imported"] += len(report.ids)
            summary["unembedded"] += report.unembedded
            summary["flagged"] += len(report.flagged)
            progress.advance(task, len(batch))
            batch.clear()

        try:
            for _, line in _lines(file):
                try:
                    batch.append(_parse_line(line))
                except ValueError:
                    continue  # reported in pass 1
                if len(batch) >= IMPORT_BATCH:
                    flush()
            if batch:
                flush()
        except BaseException:
            err.print(f"stopped after importing {summary['imported']} memories (each batch of "
                      f"{IMPORT_BATCH} is all-or-nothing)", highlight=False)
            raise
    if as_json:
        print_json(summary)
        return
    out.print(f"imported {summary['imported']} · skipped {summary['skipped']} invalid · "
              f"{summary['unembedded']} without a vector · {summary['flagged']} flagged for review", highlight=False)
    if summary["unembedded"]:
        err.print("[yellow]hint:[/] run `colony memory reindex` once the embedding model is available", highlight=False)


@memory_app.command()
def export(
    out_file: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write here instead of stdout.")] = None,
) -> None:
    """Write every active memory as JSONL (the format `colony memory import` reads).

    Examples:

        colony memory export > memories.jsonl

        colony memory export --out backup.jsonl
    """
    with _memory() as mem:
        rows = mem.export()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if out_file is None:
        sys.stdout.write(lines)
        return
    try:
        out_file.write_text(lines, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc.strerror or exc}", ExitCode.FAILED, "check the directory exists and is writable")
    err.print(f"exported {len(rows)} memories to {escape(str(out_file))}", highlight=False)
