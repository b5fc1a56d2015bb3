"""`colony pay URL`: request a URL as one of this node's agents and pay its 402 within the agent's spend policy.

The same path as the ``pay`` tool and ``POST /api/v1/payments/pay`` (`colony.payments.paying`):
the agent's spend policy decides (``COLONY_SPEND_POLICIES`` / ``COLONY_DEFAULT_SPEND_POLICY``), and
every outcome is in the payments journal (``colony wallet payments``). A payment above the
policy's approval threshold shows the same approval card as ``colony chat`` and waits for y/N on a
terminal; ``--yes`` approves it up front; without a terminal and without ``--yes`` it is denied.

Like curl, the body goes to stdout and what was paid to stderr; ``--json`` prints the whole result.
Exit codes: 0 paid, or no payment was needed (whatever the server's status) · 1 refused, denied,
failed, unreachable or a host outside ``http_allowed_hosts`` · 2 bad arguments (URL, method,
unknown agent) · 3 keys locked · 4 database.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from colony.cli._common import ExitCode, err, fail, load, out, print_json, reporting
from colony.cli.identity import announce
from colony.config import Settings
from colony.identity import DEFAULT_AGENT, Keyring
from colony.store import open_database

if TYPE_CHECKING:
    from colony.payments.paying import Approve, PayResult

__all__ = ["pay"]

_MAX_BODY = 10_000_000


def _approver(settings: Settings, yes: bool, interactive: bool) -> Approve:
    """``--yes``: approved; a terminal: the approval card of ``colony chat``; otherwise denied."""
    from colony.cli.chat import make_cli_approver
    from colony.store.sessions import new_id
    from colony.tools.approval import ApprovalRequest

    ask = make_cli_approver(False)

    async def approve(reason: str, facts: dict[str, Any]) -> str:
        if yes:
            err.print(f"[yellow]approved by --yes:[/] {escape(reason)}", highlight=False)
            return "approved"
        if not interactive:
            err.print(f"[red]approval needed:[/] {escape(reason)} — no terminal to ask on; pass --yes to approve",
                      highlight=False)
            return "denied"
        request = ApprovalRequest(approval_id=new_id("apr"), tool="pay", arguments=facts, reason=reason, risk=[],
                                  session_id=None, turn_id=None, call_id="cli", timeout_s=settings.approval_timeout_s)
        try:
            async with asyncio.timeout(settings.approval_timeout_s):
                return await ask(request)
        except TimeoutError:
            err.print("\n[red]no answer in time: denied[/]")
            return "expired"

    return approve


def _body(data: str | None) -> str | None:
    if data is None or not data.startswith("@"):
        return data
    path = Path(data[1:])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--data") from None


def _report(result: PayResult) -> None:
    record = result.payment
    if result.outcome == "paid" and record is not None:
        tx = f" · transaction {record.tx}" if record.tx else ""
        err.print(f"[green]paid[/] {escape(result.amount_text or '')} to {escape(record.pay_to)} as "
                  f"{escape(result.agent)}{escape(tx)}", highlight=False)
        if result.reason:
            err.print(f"[yellow]note:[/] {escape(result.reason)}", highlight=False)
    elif result.outcome == "not_required":
        err.print("[dim]no payment was needed[/]", highlight=False)
    else:
        err.print(f"[bold red]{result.outcome}:[/] {escape(result.reason or '')}", highlight=False)
    if result.status is not None:
        err.print(f"[dim]status {result.status} · {escape(result.content_type or 'no content type')}"
                  f"{' · body cut' if result.truncated else ''}[/]", highlight=False)


def pay(
    url: Annotated[str, typer.Argument(metavar="URL", help="An http(s) URL on a host in http_allowed_hosts.")],
    agent: Annotated[str, typer.Option("--agent", help="The paying agent of this node.")] = DEFAULT_AGENT,
    method: Annotated[str, typer.Option("--method", "-X", help="GET or POST.")] = "GET",
    data: Annotated[str | None, typer.Option("--data", "-d", help="Request body (POST); JSON is sent as "
                                                                   "application/json; @FILE reads a file.")] = None,
    max_amount: Annotated[int | None, typer.Option("--max-amount", min=1, help="Pay at most this many atomic units "
                                                                               "(micro-credits for credits).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve a payment above the approval threshold.")] = False,
    max_body: Annotated[int, typer.Option("--max-body", min=0, max=_MAX_BODY, help="Bytes of body to keep.")] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")] = False,
) -> None:
    """Request URL as an agent and pay its HTTP 402 (x402) within the agent's spend policy.

    Examples:

        colony pay http://127.0.0.1:8420/c/weather/today

        colony pay http://127.0.0.1:9000/summarise -X POST -d '{"text": "…"}' --agent scout --max-amount 500000

        colony pay http://127.0.0.1:9000/report --yes --json
    """
    from colony.payments.paying import PayError, pay_request

    verb = method.upper()
    if verb not in ("GET", "POST"):
        raise typer.BadParameter(f"{method!r}: only GET and POST can be paid for", param_hint="--method")
    body = _body(data)
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            keyring = Keyring(db, settings)
            announce(keyring.ensure(announce=False))
            interactive = sys.stdin.isatty() and not as_json
            try:
                result = asyncio.run(pay_request(
                    db=db, keyring=keyring, settings=settings, agent=agent, url=url, method=verb, body=body,
                    max_amount=max_amount, approve=_approver(settings, yes, interactive), max_body=max_body))
            except PayError as exc:
                if exc.reason in ("invalid_request", "unknown_agent"):
                    hint = "list the agents with: colony identity show" if exc.reason == "unknown_agent" else None
                    fail(str(exc), ExitCode.USAGE, hint)
                hint = ("add the host to COLONY_HTTP_ALLOWED_HOSTS" if exc.reason == "host_not_allowed"
                        else "check the URL and that the server is running")
                fail(str(exc), ExitCode.FAILED, hint)
        finally:
            db.close()
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        _report(result)
        if result.body:
            out.print(result.body, highlight=False, markup=False, soft_wrap=True)
    if result.outcome not in ("paid", "not_required"):
        if result.outcome == "refused" and not as_json:
            err.print("[dim]hint:[/] the agent's spend policy is COLONY_SPEND_POLICIES / COLONY_DEFAULT_SPEND_POLICY",
                      highlight=False)
        raise SystemExit(int(ExitCode.FAILED))
