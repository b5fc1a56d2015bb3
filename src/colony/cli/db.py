"""`colony db`: where a node's data lives, and moving it from SQLite to PostgreSQL.

``colony db status`` says which engine holds what (the SQLite file's schema version, the
PostgreSQL server's applied migrations); ``colony db migrate --to URL`` copies the SQLite data
into an empty PostgreSQL database (`colony.store.pg.copy`), checks the row counts and the ledger
there, and leaves the SQLite file untouched — the node moves when ``COLONY_DATABASE_URL`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from colony.cli._common import ExitCode, err, fail, load, out, print_json, reporting
from colony.config import Settings
from colony.errors import DatabaseBusyError, StoreError
from colony.store import Database, open_database
from colony.store._lock import lock_holders, lock_path
from colony.store.migrations import latest_version, schema_version

__all__ = ["db_app"]

db_app = typer.Typer(
    help=(
        "Where this node's data lives: its SQLite file, or PostgreSQL (COLONY_DATABASE_URL).\n\n"
        "Examples:\n\n"
        "  colony db status\n\n"
        "  colony db migrate --to postgresql://colony:secret@127.0.0.1:5432/colony\n\n"
        "  COLONY_DATABASE_URL=postgresql://… colony db migrate   # the URL from the environment"
    ),
    no_args_is_help=True,
)


def _url(given: str | None, settings: Settings) -> str:
    if given:
        if not given.startswith(("postgresql://", "postgres://")):
            fail(f"--to must be a postgresql:// URL, not {given.split('://')[0]!r}://…", ExitCode.USAGE,
                 "e.g. --to postgresql://user:password@127.0.0.1:5432/colony")
        return given
    if settings.database_url is None:
        fail("no target database", ExitCode.USAGE,
             "pass --to postgresql://user:password@host:port/db, or set COLONY_DATABASE_URL")
    return settings.database_url.get_secret_value()


def _refuse_if_open_elsewhere(settings: Settings) -> None:
    """A running node would keep writing to SQLite after the copy: those writes would be left behind."""
    others = [pid for pid in lock_holders(lock_path(settings.db_path)) if pid != os.getpid()]
    if others:
        raise DatabaseBusyError(
            str(settings.db_path),
            f"The database {settings.db_path} is open in a running node (process {', '.join(map(str, others))}): "
            "what it writes after the copy would not reach PostgreSQL. Stop it (colony up, autonomy, chat), "
            "then run colony db migrate again.",
            others,
        )


@contextmanager
def _bar(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    if not enabled:
        yield lambda _t, _d, _n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=err, transient=False)
    tasks: dict[str, TaskID] = {}

    def update(table: str, done: int, total: int) -> None:
        if not tasks:
            progress.start()
        if table not in tasks:
            tasks[table] = progress.add_task(table, total=max(total, 1))
        progress.update(tasks[table], completed=done if total else 1)

    try:
        yield update
    finally:
        if tasks:
            progress.stop()


def _verify_ledger(url: str, tables: set[str]) -> str | None:
    """Re-verify the copied ledger on PostgreSQL (signatures, chains, pairs, supply, Merkle root).

    None when the ledger is not among the copied tables; `StoreError` when the copy does not verify.
    """
    if "ledger_entries" not in tables:
        return None
    from colony.ledger.feed import read_all  # the ledger sits above the store
    from colony.ledger.pg_store import PgLedgerStore
    from colony.ledger.verify import verify_feed
    from colony.store.pg import open_pg

    pg = open_pg(url, max_size=2, name="colony-migrate-verify")
    try:
        report = verify_feed(*read_all(PgLedgerStore(pg)))
    finally:
        pg.close()
    if not report.ok:
        raise StoreError(f"The ledger copied to PostgreSQL does not verify: {'; '.join(p.message for p in report.problems[:3])}. "
                         "Run colony ledger verify on the SQLite node, then copy into a new database.")
    return f"{report.entries} entries, {report.accounts} accounts, supply {report.supply} verified"


@db_app.command("migrate")
def migrate_cmd(
    to: Annotated[str | None, typer.Option("--to", help="postgresql:// URL of an empty database "
                                           "(default: COLONY_DATABASE_URL).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy this node's SQLite data into an empty PostgreSQL database and check it there.

    Every table PostgreSQL holds is copied in one transaction (an interrupted copy leaves the target
    empty: run it again); row counts are compared and the ledger is re-verified on PostgreSQL. The
    SQLite file is not changed. Stop the node first. Then set COLONY_DATABASE_URL to run on PostgreSQL.

    Examples:

      colony db migrate --to postgresql://colony:secret@127.0.0.1:5432/colony

      colony db migrate --to postgresql://… --json
    """
    settings = load()
    url = _url(to, settings)
    with reporting():
        from colony.store.pg import open_pg  # psycopg is an optional extra
        from colony.store.pg.copy import copy_to_pg

        _refuse_if_open_elsewhere(settings)
        db = open_database(settings.db_path)
        try:
            pg = open_pg(url, max_size=2, name="colony-migrate")
            try:
                with _bar(not as_json) as bar:
                    report = copy_to_pg(db, pg, progress=bar)
            finally:
                pg.close()
        finally:
            db.close()
        ledger = _verify_ledger(url, {t.table for t in report.copied})
    if as_json:
        print_json({**report.model_dump(mode="json"), "rows": report.rows, "ledger": ledger})
        return
    table = Table("table", "rows", title=f"copied to {report.target}")
    for t in report.copied:
        table.add_row(t.table, str(t.rows))
    out.print(table)
    if ledger:
        out.print(f"[green]ledger:[/] {ledger}")
    if report.node_local:
        kept = ", ".join(f"{t} ({n})" for t, n in report.node_local.items())
        out.print(f"[dim]kept in the node's SQLite file (node-local): {kept}[/]")
    out.print(f"[bold green]{report.rows} rows in {len(report.copied)} tables copied.[/] Run the node on it with "
              "COLONY_DATABASE_URL=<that URL>; the SQLite file is unchanged.")


def _status(settings: Settings) -> dict[str, Any]:
    db = Database(settings.db_path)
    try:
        sqlite = {"path": str(settings.db_path), "exists": settings.db_path.exists(),
                  "schema_version": schema_version(db) if settings.db_path.exists() else 0,
                  "latest": latest_version()}
    finally:
        db.close()
    pg: dict[str, Any] | None = None
    if settings.database_url is not None:
        from colony.store.pg import PgDatabase, applied_versions, describe_url, latest_pg_version

        url = settings.database_url.get_secret_value()
        pg = {"server": describe_url(url), "latest": latest_pg_version()}
        conn = PgDatabase(url, max_size=1, name="colony-db-status")
        try:
            pg["applied"] = applied_versions(conn)
            pg["tables"] = [r["table_name"] for r in conn.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name")]
        finally:
            conn.close()
    return {"engine": "postgresql" if pg else "sqlite", "sqlite": sqlite, "postgresql": pg}


@db_app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Which engine this node uses, each schema's version, and which tables live on PostgreSQL.

    Examples:

      colony db status

      colony db status --json | jq .postgresql.applied
    """
    settings = load()
    with reporting():
        info = _status(settings)
    if as_json:
        print_json(info)
        return
    s = info["sqlite"]
    out.print(f"engine: [bold]{info['engine']}[/]")
    out.print(f"SQLite {s['path']}: schema {s['schema_version']} of {s['latest']}")
    pg = info["postgresql"]
    if pg:
        out.print(f"PostgreSQL {pg['server']}: migrations {pg['applied']} (this Colony knows up to {pg['latest']})")
        out.print(f"on PostgreSQL: {', '.join(pg['tables'])}")
    else:
        out.print("[dim]PostgreSQL: not configured (set COLONY_DATABASE_URL=postgresql://… to use it)[/]")
