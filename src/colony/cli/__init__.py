"""The `colony` command line (A5): Typer commands over the node's library functions.

May import everything below it (node, agent, tools, store, llm); nothing imports the CLI.
"""

from __future__ import annotations

from typing import Annotated

import typer

from colony import __version__
from colony.cli._common import ExitCode, err, load, out, reporting
from colony.cli.chat import chat
from colony.cli.doctor import doctor, run_checks
from colony.cli.history import history

__all__ = ["app", "main"]

app = typer.Typer(
    name="colony",
    help=(
        "Colony: local-first autonomous agents that remember, govern their own tools and trade work.\n\n"
        "Configuration comes from COLONY_* environment variables or a .env file "
        "(COLONY_HOME, COLONY_MODEL_BASE_URL, COLONY_MODEL_NAME, COLONY_WORKSPACE, …).\n\n"
        "Exit codes: 0 ok · 1 failed · 2 usage · 3 config or model unavailable · 4 database · 130 cancelled."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.command()(chat)
app.command()(doctor)
app.command()(history)


@app.command()
def up() -> None:
    """Prepare and start this node.

    Today this creates the data directory, migrates the database, checks the model endpoint and
    prints what works. The web UI and REST API will be served from here once the server lands;
    until then use `colony chat`.

    Example:

        colony up
    """
    settings = load()
    with reporting():
        checks = run_checks(settings)
    for c in checks:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}[c.status]
        out.print(f"[{colour}]{c.status:>4}[/] {c.name}: {c.detail}", highlight=False)
    # A node without a reachable model still runs, degraded (every optional service degrades
    # gracefully); a node without its data directory, database or workspace cannot.
    failed = [c for c in checks if c.status == "fail" and c.required and not c.name.startswith("model")]
    if failed:
        err.print("[red]the node is not ready; fix the checks marked fail (colony doctor explains)[/]")
        raise typer.Exit(int(ExitCode.FAILED))
    degraded = any(c.status != "ok" for c in checks)
    state = "[yellow]node ready (degraded)[/]" if degraded else "[bold green]node ready[/]"
    out.print(f"{state} · data in {settings.home} · talk to it with: colony chat")


@app.command()
def version(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print Colony's version."""
    if as_json:
        out.print_json(data={"version": __version__})
    else:
        out.print(__version__)


def main() -> None:
    app()
