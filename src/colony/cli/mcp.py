"""`colony mcp`: Colony as an MCP server, and the pinned tools of the MCP servers it uses.

``serve`` speaks MCP on stdin/stdout for another agent. ``check`` connects to the configured
servers once and reports their health. ``list`` shows each external tool's
pinned definition and whether it is usable; ``approve`` accepts a changed definition (the
tool stays disabled until a person does); ``events`` is the audit trail of pins.
"""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer
from rich.table import Table

from colony.cli._common import ExitCode, exit_served, fail, load, out, print_json, reporting
from colony.store import open_database

__all__ = ["mcp_app"]

mcp_app = typer.Typer(
    name="mcp",
    help=(
        "Model Context Protocol: serve Colony's memory, tasks and read-only tools to other agents, and "
        "review the pinned definitions of external MCP tools (configured with COLONY_MCP_SERVERS)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@mcp_app.command()
def serve() -> None:
    """Serve MCP on stdin/stdout (an MCP client launches this).

    Calls are governed and audited like the agent's own; a call whose approval tier is "ask"
    waits for a person to decide it in the node's approvals (web UI or API).

    Examples:

        colony mcp serve

        {"mcpServers": {"colony": {"command": "colony", "args": ["mcp", "serve"]}}}
    """
    from colony.mcpx.server import serve_mcp_stdio  # deferred: loads the protocol SDK

    settings = load()
    with reporting():
        asyncio.run(serve_mcp_stdio(settings))
    exit_served()


@mcp_app.command()
def check(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Connect to every configured MCP server once and report its state, tools and disabled tools.

    Exits 1 when a server is unreachable or a tool is disabled by a changed definition.

    Examples:

        COLONY_MCP_SERVERS='[{"name": "files", "command": "mcp-files"}]' colony mcp check
    """
    from colony.mcpx.client import McpHub, ServerHealth
    from colony.node import Node

    async def probe() -> list[ServerHealth]:
        node = Node(settings)
        hub = McpHub(node)
        try:
            await hub.start()
            return hub.health()
        finally:
            await hub.aclose()
            await node.aclose()

    settings = load()
    if not settings.mcp_servers:
        fail("no MCP servers are configured", ExitCode.CONFIG, "set COLONY_MCP_SERVERS (see README: MCP)")
    with reporting():
        report = asyncio.run(probe())
    if as_json:
        print_json([h.model_dump() for h in report])
    else:
        table = Table("server", "transport", "state", "tools", "disabled (changed)", "error")
        for h in report:
            state = "[green]connected[/]" if h.state == "connected" else f"[red]{h.state}[/]"
            table.add_row(h.name, h.transport, state, str(len(h.tools)), ", ".join(h.disabled), h.error or "")
        out.print(table)
    if any(h.state != "connected" or h.disabled for h in report):
        raise SystemExit(int(ExitCode.FAILED))


@mcp_app.command("list")
def list_(
    server: Annotated[str | None, typer.Option(help="Only this server's tools.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Pinned external tools: approved, or changed and disabled until approved.

    Examples:

        colony mcp list

        colony mcp list --server files --json
    """
    from colony.mcpx.pins import list_pins

    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            pins = list_pins(db, server=server)
        finally:
            db.close()
    if as_json:
        print_json([p.model_dump() for p in pins])
        return
    if not pins:
        out.print("No pinned MCP tools yet (tools are pinned the first time the node lists them).")
        return
    table = Table("server", "tool", "status", "pinned hash", "changed to", "updated")
    for p in pins:
        status = "[green]approved[/]" if p.status == "approved" else "[red]changed: disabled[/]"
        table.add_row(p.server, p.tool, status, p.hash[:12], (p.pending_hash or "")[:12], p.updated_at)
    out.print(table)


@mcp_app.command()
def approve(
    server: Annotated[str, typer.Argument(help="The MCP server's configured name.")],
    tool: Annotated[str | None, typer.Argument(help="The tool's name on that server; omit with --all.")] = None,
    all_changed: Annotated[bool, typer.Option("--all", help="Approve every changed tool of the server.")] = False,
) -> None:
    """Accept a changed tool definition so the tool can be used again (audited).

    Read the new definition first: a changed description can carry instructions to the model.

    Examples:

        colony mcp approve files read_file

        colony mcp approve files --all
    """
    from colony.mcpx.pins import approve_pin, list_pins

    if (tool is None) == (not all_changed):
        fail("name one tool or pass --all", ExitCode.USAGE, "colony mcp approve SERVER TOOL")
    settings = load()
    actor = f"cli:{getpass.getuser()}"
    with reporting():
        db = open_database(settings.db_path)
        try:
            names = [tool] if tool else [p.tool for p in list_pins(db, server=server) if p.status == "changed"]
            approved = [n for n in names if n and approve_pin(db, server, n, actor=actor)]
        finally:
            db.close()
    if not approved:
        fail(f"nothing to approve for {server}{' ' + tool if tool else ''}", ExitCode.FAILED,
             "`colony mcp list` shows which tools changed")
    for name in approved:
        out.print(f"approved the new definition of {server}/{name}")


@mcp_app.command()
def events(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The audit trail of tool pins: first seen, changed by the server, approved by a person.

    Examples:

        colony mcp events --limit 20
    """
    from colony.mcpx.pins import list_pin_events

    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            rows = list_pin_events(db, limit=limit)
        finally:
            db.close()
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    table = Table("at", "server", "tool", "event", "old", "new", "by")
    for r in rows:
        table.add_row(r.at, r.server, r.tool, r.event, (r.old_hash or "")[:12], r.new_hash[:12], r.actor)
    out.print(table)
