"""pay: request a URL and pay for it when the server asks (HTTP 402, x402 v2), within a spend policy.

The tool's own approval tier is ``allow`` by default (`colony.config.DEFAULT_TOOL_POLICY`): what
may be paid is decided per payment by the agent's spend policy (`colony.payments.policy`), which
knows the amount, the asset and the payee — the gate in front of the tool sees only a URL. The
policy refuses what it does not allow (by default: everything, until the operator names hosts or
payees) and asks a person, through the executor's approver (`ToolContext.ask_person`), for any
payment above its threshold. Setting ``tool_policy {"pay": "ask"}`` also asks before every call.

A refused or unapproved payment is a denial (the breaker ignores it), a failed one an error; both
are in the payments journal, as is every settled payment. The host must be in
``http_allowed_hosts``, as for ``http_get``; redirects are not followed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from colony.errors import ToolArgumentsError, ToolDeniedError, ToolError
from colony.identity.store import DEFAULT_AGENT, NAME_PATTERN
from colony.store import open_database
from colony.tools.registry import ToolContext, tool

if TYPE_CHECKING:
    from colony.payments.paying import PayResult

__all__ = ["PayArgs", "pay", "render_result"]

_NAME = "pay"


class PayArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=4096, description="An http:// or https:// URL on an allowed host.")
    method: Literal["GET", "POST"] = Field(default="GET", description="The HTTP method.")
    body: str | None = Field(default=None, max_length=100_000,
                             description="Request body for POST; JSON text is sent as application/json.")
    agent: str | None = Field(default=None, pattern=NAME_PATTERN,
                              description=f"The paying agent of this node (default: {DEFAULT_AGENT}).")
    max_amount: int | None = Field(default=None, gt=0, description=(
        "Pay at most this many atomic units (micro-credits for credits: 1 credit = 1000000). "
        "Omit to let the spend policy alone decide."))


async def _nobody(reason: str, facts: dict[str, Any]) -> str:
    """Outside the executor there is no person to ask: a payment that needs one is denied."""
    return "denied"


def render_result(result: PayResult) -> str:
    """The outcome for the model: what was paid (or not), the server's status, then the body."""
    lines: list[str] = []
    record = result.payment
    if result.outcome == "paid" and record is not None:
        tx = f" (transaction {record.tx})" if record.tx else ""
        lines.append(f"paid {result.amount_text} to {record.pay_to}{tx} as agent {result.agent}")
        if result.reason:
            lines.append(f"note: {result.reason}")
    else:
        lines.append("no payment was needed")
    lines.append(f"status: {result.status}")
    lines.append(f"content-type: {result.content_type or '(none)'}")
    lines.append("--- body ---")
    lines.append(result.body)
    if result.truncated:
        lines.append("…[body cut]")
    return "\n".join(lines)


@tool(effect="network")
async def pay(ctx: ToolContext, args: PayArgs) -> str:
    """Request a URL and, if the server answers 402 Payment Required (x402), pay it from the agent's wallet.

    Payments follow the agent's spend policy: allowed payees and assets, per-payment and per-day
    maximums; a person is asked above the approval threshold. Returns what was paid, the status and the body.
    """
    from colony.identity import Keyring
    from colony.payments.paying import PayError, pay_request

    db = open_database(ctx.settings.db_path)
    try:
        result = await pay_request(
            db=db, keyring=Keyring(db, ctx.settings), settings=ctx.settings, agent=args.agent or DEFAULT_AGENT,
            url=args.url, method=args.method, body=args.body, max_amount=args.max_amount,
            approve=ctx.ask_person or _nobody, max_body=ctx.settings.tool_output_limit)
    except PayError as exc:
        if exc.reason in ("invalid_request", "unknown_agent"):
            raise ToolArgumentsError(_NAME, str(exc)) from exc
        if exc.reason == "host_not_allowed":
            raise ToolDeniedError(_NAME, str(exc)) from exc
        raise ToolError(_NAME, str(exc)) from exc
    finally:
        db.close()
    if result.outcome == "refused":
        raise ToolDeniedError(_NAME, f"The payment was refused by the spend policy: {result.reason}. Nothing was paid "
                                     "or signed; do not retry it — ask the operator if this payment is needed.")
    if result.outcome == "denied":
        raise ToolDeniedError(_NAME, f"The payment was {result.reason}. Nothing was paid; do not retry it without a "
                                     "reason the person did not already see.")
    if result.outcome == "failed":
        body = f" The server's answer: {result.body[:500]}" if result.body else ""
        raise ToolError(_NAME, f"The payment did not go through: {result.reason} (status {result.status}).{body}")
    return render_result(result)
