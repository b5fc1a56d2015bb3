"""`colony backup` and `colony restore`: a consistent copy of the node database, and putting one back.

The work is in `colony.store.backup`; this module parses the command line, shows a progress bar
on stderr (the copy of a large database takes a while) and maps errors to exit codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from colony.cli._common import ExitCode, err, fail, load, out, print_json, reporting
from colony.errors import BackupError
from colony.store.backup import (
    BackupInfo,
    create_backup,
    default_backup_path,
    excluded_by,
    excluded_note,
    list_backups,
    restore_backup,
)

__all__ = ["backup", "restore"]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _counts(counts: dict[str, int]) -> str:
    """``12 sessions, 3 tasks`` — the tables that hold anything, so a glance says what is in it."""
    return ", ".join(f"{n} {table}" for table, n in counts.items() if n) or "no rows"


@contextmanager
def _pages_bar(description: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar over the pages copied, on stderr so ``--json`` output on stdout stays clean.

    It appears with the first pages copied: a refusal before any copying prints only the error.
    """
    if not enabled:
        yield lambda _done, _total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.completed:.0f}/{task.total:.0f} pages"), TimeElapsedColumn())
    progress = Progress(*columns, console=err, transient=False)
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task:
            progress.start()
            task.append(progress.add_task(description, total=total))
        progress.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            progress.stop()


def _refuse_taken_path(exc: BackupError) -> NoReturn:
    """A target that already exists is a command-line matter (exit 2, ``--force``); every other
    refusal is about the data directory or a database and goes on to `reporting` (exit 4)."""
    if exc.reason == "exists":
        fail(str(exc), ExitCode.USAGE)
    raise exc


def _list(as_json: bool, limit: int) -> None:
    settings = load()
    found = list_backups(settings.home, limit=limit)
    if as_json:
        print_json({"backups": [b.model_dump(mode="json") for b in found]})
        return
    if not found:
        out.print(f"no backups recorded in {settings.home}; make one with: colony backup", highlight=False)
        return
    table = Table(title="backups (newest first)")
    for col in ("created", "size", "schema", "holds", "path"):
        table.add_column(col, overflow="fold")
    for b in found:
        table.add_row(b.created_at[:19].replace("T", " "), _size(b.size_bytes), str(b.schema_version), _counts(b.counts),
                      b.path + ("" if b.present else " [red](missing)[/]"))
    out.print(table)


def backup(
    path: Annotated[
        Path | None,
        typer.Argument(metavar="PATH", show_default=False,
                       help="File to write, or a folder to put it in. Default: $COLONY_HOME/backups/colony-<time>.db"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it already exists.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the backup (or the list) as JSON.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the backups made from this node instead.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many backups --list shows.")] = 20,
) -> None:
    """Back up the node database to one file, safely while the node runs and writes.

    The copy is one consistent snapshot (SQLite's online backup API), checked, written owner-only
    (0600) to a temporary file and renamed into place, so PATH is either absent or a complete
    backup. Restore it with `colony restore PATH`.

    Examples:

        colony backup

        colony backup /mnt/usb/colony-monday.db

        colony backup ~/backups/ --json

        colony backup --list

    Exit codes: 0 written, 2 PATH exists (use --force), 4 no database, unusable folder or a
    damaged database (nothing is written), 5 a restore is replacing the database right now.
    """
    if list_:
        if path is not None or force:
            fail("--list shows the backups; it takes no PATH or --force", ExitCode.USAGE,
                 "run colony backup --list, or colony backup PATH to make one")
        _list(as_json, limit)
        return
    settings = load()
    target = path if path is not None else default_backup_path(settings.home)
    with reporting():
        try:
            with _pages_bar("backing up", enabled=not as_json) as progress:
                info = create_backup(settings.db_path, target, overwrite=force, progress=progress,
                                     excludes=excluded_by(settings.database_url))
        except BackupError as exc:
            _refuse_taken_path(exc)
    _report_backup(info, as_json)


def _report_backup(info: BackupInfo, as_json: bool) -> None:
    if as_json:
        print_json(info.model_dump(mode="json"))
        return
    out.print(f"[green]backed up[/] to {info.path} · {_size(info.size_bytes)} · schema {info.schema_version} · "
              f"{info.duration_ms:.0f} ms", highlight=False)
    if info.counts:
        out.print(f"[dim]holds {_counts(info.counts)}[/]", highlight=False)
    note = excluded_note(info)
    if note:
        err.print(f"[yellow]note:[/] {note}", highlight=False)


def restore(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A backup file written by `colony backup`.",
                                         show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print what was restored as JSON.")] = False,
) -> None:
    """Replace the node database with a backup; the current one is kept aside, not deleted.

    Refuses a file that is not a sound Colony database of a schema this Colony knows, and refuses
    while a node (colony up, chat, autonomy, acp, mcp serve) has the database open: stop it
    first. The replaced database is kept as colony.db.before-restore-<time> in COLONY_HOME; an
    older schema is upgraded when the node next starts.

    Examples:

        colony restore ~/.colony/backups/colony-20250101T120000Z.db

        colony backup --list && colony restore /mnt/usb/colony-monday.db --json

    Exit codes: 0 restored, 4 the file is missing, damaged, not a Colony database or from a newer
    Colony (nothing changed), 5 a node has the database open (stop it first).
    """
    settings = load()
    with reporting(), _pages_bar("restoring", enabled=not as_json) as progress:
        report = restore_backup(path, settings.db_path, progress=progress)
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    out.print(f"[green]restored[/] {report.source} → {report.database} · schema {report.schema_version}",
              highlight=False)
    if report.counts:
        out.print(f"[dim]holds {_counts(report.counts)}[/]", highlight=False)
    if report.kept_aside:
        out.print(f"the database it replaced is kept as {report.kept_aside}", highlight=False)
    else:
        err.print("there was no database before; nothing was kept aside", highlight=False)
    if excluded_by(settings.database_url):
        err.print("[yellow]note:[/] only the node-local SQLite file was restored; the node's PostgreSQL "
                  "database is unchanged (restore it on its server, pg_restore).", highlight=False)

