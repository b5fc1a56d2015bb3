"""Shared CLI plumbing: consoles, exit codes, settings loading and error reporting."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, NoReturn

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from colony.config import Settings
from colony.errors import ColonyError, ConfigError, DatabaseBusyError, ModelError, StoreError

__all__ = ["ExitCode", "err", "exit_served", "fail", "load", "out", "print_json", "progress_bar", "reporting"]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class ExitCode(IntEnum):
    """What a `colony` exit status means (documented in `colony --help`)."""

    OK = 0
    FAILED = 1  # the turn or check failed
    USAGE = 2  # bad command line (Typer's own code)
    CONFIG = 3  # configuration missing or invalid (the key passphrase too), or no model reachable
    STORE = 4  # the data directory or the database cannot be used (unwritable, damaged, too new)
    BUSY = 5  # the database is in use by a running node (colony restore needs it to itself)
    CANCELLED = 130


def fail(message: str, code: ExitCode, hint: str | None = None) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    if hint:
        err.print(f"[dim]hint:[/] {hint}", highlight=False)
    raise SystemExit(int(code))


class _StoreWarnings(logging.Handler):
    """Show the store's warnings (an empty database that had data, permissions tightened) on stderr.

    They also reach the JSON log when one is configured (``colony up``): the record propagates.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[bold yellow]warning:[/] {escape(record.getMessage())}", highlight=False)


def _show_store_warnings() -> None:
    logger = logging.getLogger("colony.store")
    if not any(isinstance(h, _StoreWarnings) for h in logger.handlers):
        logger.addHandler(_StoreWarnings())


def load(**overrides: Any) -> Settings:
    """The settings every command starts from (configuration errors exit 3 with a hint)."""
    _show_store_warnings()
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fail(f"invalid configuration: {problems}", ExitCode.CONFIG, "check your COLONY_* variables and .env")


@contextmanager
def reporting() -> Iterator[None]:
    """Turn Colony errors into a message and a meaningful exit code (no tracebacks)."""
    try:
        yield
    except ColonyError as exc:
        code = ExitCode.FAILED
        if isinstance(exc, ConfigError | ModelError):
            code = ExitCode.CONFIG
        elif isinstance(exc, DatabaseBusyError):
            code = ExitCode.BUSY
        elif isinstance(exc, StoreError):
            code = ExitCode.STORE
        fail(str(exc), code)
    except KeyboardInterrupt:
        err.print("[yellow]cancelled[/]")
        raise SystemExit(int(ExitCode.CANCELLED)) from None


def exit_served() -> NoReturn:
    """End a stdio server (``colony acp``, ``colony mcp serve``) at once after a clean shutdown.

    The client that launched us waits for the process to exit. By now the node and its database
    are closed; what is left is the interpreter tearing down the protocol SDKs' thousands of
    pydantic models, which takes about a second and changes nothing on disk. Logs and stdio are
    flushed first, then the process leaves without that teardown.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str, indent=2) + "\n")


@contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr for work longer than a second; yields ``step(message)``.

    Each call advances the bar by one and shows ``message`` (the case or problem just done).
    Disabled (``--json``) it yields a step that does nothing, so stdout stays clean for scripts.
    """
    if not enabled:
        yield lambda _message: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("[dim]{task.fields[last]}"))
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(description, total=total, last="")

        def step(message: str) -> None:
            progress.update(task, advance=1, last=message[:60])

        yield step
