"""The `colony` command line (A5): Typer commands over the node's library functions.

May import everything below it (node, agent, tools, store, llm); nothing imports the CLI.
"""

from __future__ import annotations

from typing import Annotated

import typer

from colony import __version__
from colony.cli._common import ExitCode, err, fail, load, out, reporting
from colony.cli.acp import acp
from colony.cli.agents import agents_app
from colony.cli.backup import backup, restore
from colony.cli.bench import bench_app
from colony.cli.cartridge import cartridge_app
from colony.cli.chat import chat
from colony.cli.cognition import cognition_app
from colony.cli.db import db_app
from colony.cli.doctor import doctor
from colony.cli.evals import eval_app
from colony.cli.history import history
from colony.cli.identity import announce, identity_app
from colony.cli.ledger import ledger_app
from colony.cli.market import market_app
from colony.cli.market_gov import gov_app
from colony.cli.mcp import mcp_app
from colony.cli.memory import memory_app
from colony.cli.memory_io import export as _export  # noqa: F401  (registers import/export)
from colony.cli.pay import pay
from colony.cli.peers import peers_app, spawn
from colony.cli.price import price_app
from colony.cli.tasks import autonomy, tasks_app
from colony.cli.wallet import wallet_app
from colony.store.home import prepare_home

__all__ = ["app", "main"]

app = typer.Typer(
    name="colony",
    help=(
        "Colony: local-first autonomous agents that remember, govern their own tools and trade work.\n\n"
        "Configuration comes from COLONY_* environment variables or a .env file "
        "(COLONY_HOME, COLONY_MODEL_BASE_URL, COLONY_MODEL_NAME, COLONY_WORKSPACE, …).\n\n"
        "Exit codes: 0 ok · 1 failed · 2 usage · 3 config (or key passphrase missing or wrong) or model unavailable · "
        "4 data directory or database "
        "(unwritable COLONY_HOME, damaged or too new database) · 5 database in use by a running node · 130 cancelled."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.command()(chat)
app.command()(doctor)
app.command()(history)
app.add_typer(memory_app, name="memory")
app.add_typer(cartridge_app, name="cartridge")
app.add_typer(bench_app, name="bench")
app.add_typer(cognition_app, name="cognition")
app.add_typer(eval_app, name="eval")
app.command()(acp)
app.add_typer(mcp_app, name="mcp")
app.add_typer(tasks_app, name="tasks")
app.add_typer(identity_app, name="identity")
app.add_typer(agents_app, name="agents")
app.add_typer(wallet_app, name="wallet")
app.add_typer(ledger_app, name="ledger")
market_app.add_typer(gov_app)  # stake, propose, vote, veto, proposals, execute: one `colony market`
app.add_typer(market_app, name="market")
app.command()(pay)
app.add_typer(price_app, name="price")
app.add_typer(db_app, name="db")
app.add_typer(peers_app, name="peers")
app.command()(spawn)
app.command()(autonomy)
app.command()(backup)
app.command()(restore)


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address to bind. Loopback only unless --allow-remote.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8420,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow binding a non-loopback address (token required).")
    ] = False,
) -> None:
    """Start this node: database, token, API and web UI on http://127.0.0.1:8420.

    The node runs even when no model answers yet (the UI says how to connect one). Stop it with
    Ctrl-C or SIGTERM: running turns are cancelled and recorded first.

    Examples:

        colony up

        colony up --port 9000

        COLONY_MODEL_BASE_URL=http://127.0.0.1:11434/v1 COLONY_MODEL_NAME=qwen2.5:7b colony up
    """
    from colony.identity.store import prepare_identities
    from colony.server.run import build_server, free_port, port_is_free  # deferred: loads the web stack

    settings = load()
    with reporting():
        prepare_home(settings.home)  # before the token is written there: one clear error if it cannot be
        port = port or free_port(host)
        if not port_is_free(host, port):
            fail(f"port {port} on {host} is already in use", ExitCode.FAILED,
                 "stop the other process or pass --port N (another colony up may be running)")
        keys = prepare_identities(settings)  # the node's identities: created now, or exit 3 if locked
        from colony.payments.service import rail_from_settings

        rail_from_settings(settings)  # a half-configured EVM rail stops here (exit 3), not at the first payment
        server, token, created = build_server(settings, host, port, allow_remote=allow_remote)
    shown = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    err.print(f"[bold green]colony node[/] on {shown} · data in {settings.home}", highlight=False)
    if created:
        err.print(f"[yellow]new node token (shown once; `colony token` prints it again):[/] {token}", highlight=False)
    else:
        err.print("log in with the node token: [bold]colony token[/] prints it", highlight=False)
    announce(keys)
    server.run()


@app.command()
def token(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Print this node's API token (created if the node has none yet).

    Examples:

        colony token

        curl -H "Authorization: Bearer $(colony token)" http://127.0.0.1:8420/api/v1/sessions
    """
    from colony.server.auth import load_or_create_token

    settings = load()
    with reporting():
        prepare_home(settings.home)
    value, _ = load_or_create_token(settings.home)
    if as_json:
        out.print_json(data={"token": value})
    else:
        print(value)


@app.command()
def version(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print Colony's version."""
    if as_json:
        out.print_json(data={"version": __version__})
    else:
        out.print(__version__)


def main() -> None:
    app()
