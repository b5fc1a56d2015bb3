"""`colony chat`: one-shot prompts and an interactive REPL over the same event stream."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel

from colony.agent.events import (
    AgentEvent,
    ApprovalRequested,
    Notice,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
)
from colony.agent.loop import run_turn
from colony.cli._common import ExitCode, err, load, out, reporting
from colony.config import Settings

if TYPE_CHECKING:
    from colony.node import Node
from colony.tools.approval import ApprovalRequest, Approver, Decision

__all__ = ["chat"]


async def _read_line() -> str | None:
    """Read one line from stdin without blocking the event loop; None at end of input.

    Uses the loop's reader so that an approval timeout can cancel the wait cleanly.
    """
    loop = asyncio.get_running_loop()
    try:
        fd = sys.stdin.fileno()
    except (ValueError, OSError):
        return None
    fut: asyncio.Future[str | None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            line = sys.stdin.readline()
            fut.set_result(line if line else None)

    try:
        loop.add_reader(fd, ready)
    except (ValueError, OSError, PermissionError):  # e.g. stdin is a regular file
        line = sys.stdin.readline()
        return line if line else None
    try:
        return await fut
    finally:
        loop.remove_reader(fd)


def make_cli_approver(auto_approve: bool) -> Approver:
    async def approve(request: ApprovalRequest) -> Decision:
        args = json.dumps(request.arguments, ensure_ascii=False)[:800]
        risk = f"\n[red]risk:[/] {escape(', '.join(request.risk))}" if request.risk else ""
        err.print(
            Panel(f"[bold]{request.tool}[/] {escape(args)}\n[dim]{escape(request.reason)}[/]{risk}",
                  title="approval needed", border_style="yellow"),
        )
        if auto_approve:
            err.print("[yellow]approved by --approve-all[/]")
            return "approved"
        err.print(f"Allow this call? [y/N] (denied after {request.timeout_s:.0f}s) ", end="")
        line = await _read_line()
        if line is None:
            err.print("\n[red]no answer (end of input): denied[/]")
            return "denied"
        return "approved" if line.strip().lower() in {"y", "yes"} else "denied"

    return approve


def _render(ev: AgentEvent, *, as_json: bool, streamed: list[bool]) -> None:
    if as_json:
        sys.stdout.write(ev.model_dump_json() + "\n")
        sys.stdout.flush()
        return
    if isinstance(ev, TextDelta):
        streamed[0] = True
        out.print(ev.text, end="", highlight=False, markup=False)
    elif isinstance(ev, ToolCallStarted):
        err.print(f"[cyan]→ {ev.name}[/] [dim]{escape(json.dumps(ev.arguments, ensure_ascii=False)[:200])}[/]")
    elif isinstance(ev, ToolCallFinished):
        colour = "green" if ev.outcome == "ok" else "red"
        err.print(f"[{colour}]← {ev.name}: {ev.outcome}[/] [dim]({ev.latency_ms:.0f} ms, {ev.approval})[/]")
    elif isinstance(ev, Notice):
        err.print(f"[yellow]• {escape(ev.message)}[/]")
    elif isinstance(ev, ApprovalRequested):
        pass  # the approver prints the card itself, just before asking
    elif isinstance(ev, TurnFinished):
        if ev.text and not streamed[0]:
            out.print(ev.text, highlight=False, markup=False)
        elif streamed[0]:
            out.print()
        if ev.status != "completed":
            err.print(f"[red]turn {ev.status}:[/] {escape(ev.error or '')}", highlight=False)


async def _one_turn(node: Node, prompt: str, session: str | None, *, stream: bool, as_json: bool,
                    agent_name: str | None = None) -> TurnFinished:
    agent = await node.agent(name=agent_name)
    streamed = [False]
    last: TurnFinished | None = None
    async for ev in run_turn(agent, node.deps, prompt, session_id=session, stream=stream):
        _render(ev, as_json=as_json, streamed=streamed)
        if isinstance(ev, TurnFinished):
            last = ev
            streamed[0] = False
    assert last is not None
    return last


def _exit_code(fin: TurnFinished) -> ExitCode:
    if fin.status == "completed":
        return ExitCode.OK
    if fin.status == "cancelled":
        return ExitCode.CANCELLED
    return ExitCode.CONFIG if fin.error_code in {"model_unavailable", "config_error"} else ExitCode.FAILED


async def _repl(node: Node, session: str | None, *, stream: bool, agent_name: str | None = None) -> ExitCode:
    err.print("[bold]colony chat[/] — type a message; /new starts a new session, /exit or Ctrl-D leaves.")
    code = ExitCode.OK
    while True:
        err.print("[bold green]you>[/] ", end="")
        line = await _read_line()
        if line is None or line.strip() in {"/exit", "/quit"}:
            err.print()
            return code
        text = line.strip()
        if not text:
            continue
        if text == "/new":
            session = None
            err.print("[dim]new session[/]")
            continue
        task = asyncio.ensure_future(_one_turn(node, text, session, stream=stream, as_json=False,
                                               agent_name=agent_name))
        try:
            fin = await task
        except asyncio.CancelledError:
            err.print("[yellow]turn cancelled[/]")
            continue
        session = fin.session_id
        code = _exit_code(fin)


def chat(
    prompt: Annotated[str | None, typer.Argument(help="The message. Omit it to start the interactive REPL.")] = None,
    session: Annotated[str | None, typer.Option("--session", "-s", help="Continue this session id.")] = None,
    approve_all: Annotated[
        bool, typer.Option("--approve-all", help="Approve every 'ask' tool call without prompting (careful).")
    ] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Wait for whole answers.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as JSON lines (one-shot only).")] = False,
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Workspace root for file tools.")] = None,
    agent: Annotated[str | None, typer.Option(
        "--agent", "-a", help="Run as this agent of the node: its persona and model tier (colony agents list).")] = None,
) -> None:
    """Talk to the agent: one prompt (answer on stdout) or a REPL.

    Tool calls that need approval are asked on the terminal; with no terminal and no answer
    they are denied (fail closed).

    Examples:

        colony chat "list the Python files here and count their lines"

        echo y | colony chat "write hello to notes.txt"

        colony chat --session ses_1234 "and now summarise it"

        colony chat --agent scout "find the config files"

    Exit codes: 0 answered, 1 the turn failed, 3 no model reachable or bad config,
    4 database problem, 130 cancelled.
    """
    settings = load(workspace=workspace)
    with reporting():
        code = asyncio.run(_chat(settings, prompt, session, approve_all, not no_stream, as_json, agent))
    raise typer.Exit(int(code))


async def _chat(
    settings: Settings, prompt: str | None, session: str | None, approve_all: bool, stream: bool, as_json: bool,
    agent_name: str | None = None,
) -> ExitCode:
    from colony.mcpx import McpHub
    from colony.node import Node  # deferred: it loads the model client (~0.4 s)

    node = Node(settings, approver=make_cli_approver(approve_all))
    hub = McpHub(node)  # the configured external MCP servers' tools join this chat's registry
    try:
        await hub.start()
        if prompt is None:
            return await _repl(node, session, stream=stream, agent_name=agent_name)
        fin = await _one_turn(node, prompt, session, stream=stream, as_json=as_json, agent_name=agent_name)
        if not as_json:
            err.print(f"[dim]session {fin.session_id} · {fin.tool_calls} tool calls · "
                      f"{fin.usage.total_tokens} tokens[/]")
        return _exit_code(fin)
    finally:
        await hub.aclose()
        await node.aclose()
