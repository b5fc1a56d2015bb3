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
from colony.errors import ColonyError
from colony.store import latest_version, open_database, schema_version

__all__ = ["Check", "doctor", "run_checks"]

Status = Literal["ok", "warn", "fail"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    required: bool = True


def _check_home(settings: Settings) -> Check:
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        probe = settings.home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check(name="data directory", status="fail",
                     detail=f"{settings.home} is not writable ({exc}); set COLONY_HOME to a writable folder")
    return Check(name="data directory", status="ok", detail=str(settings.home))


def _check_database(settings: Settings) -> Check:
    try:
        db = open_database(settings.db_path)
    except ColonyError as exc:
        return Check(name="database", status="fail", detail=str(exc))
    try:
        mode = db.scalar("PRAGMA journal_mode")
        quick = db.scalar("PRAGMA quick_check")
        version = schema_version(db)
    finally:
        db.close()
    if quick != "ok":
        return Check(name="database", status="fail",
                     detail=f"integrity check says {quick!r}; restore from a backup")
    return Check(
        name="database", status="ok",
        detail=f"{settings.db_path} · schema {version}/{latest_version()} · {mode} · SQLite {apsw.sqlite_lib_version()}",
    )


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


def run_checks(settings: Settings) -> list[Check]:
    checks = [
        Check(name="colony", status="ok", detail=f"version {__version__} · Python {sys.version.split()[0]}"),
        _check_home(settings),
        _check_database(settings),
        _check_workspace(settings),
    ]
    checks += asyncio.run(_check_models(settings))
    return checks


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check configuration, database, workspace and model endpoints.

    Exits 0 when everything required works, 1 otherwise.

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
