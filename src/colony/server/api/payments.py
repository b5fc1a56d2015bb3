"""x402 payments over HTTP (bearer token): the journal, and paying a 402 resource as one of this node's agents.

``GET /api/v1/payments`` lists the payments journal, newest first — payments the node received for
its priced routes (``direction "in"``) and payments its agents made (``"out"``), refusals and
failures included. Page with ``before_id`` = the last id seen.

``POST /api/v1/payments/pay`` makes an agent request a URL and pay a 402 under the agent's spend
policy, exactly as the ``pay`` tool does (`colony.payments.paying`). The caller holds the node's
token, so the caller is the person: a payment above the policy's approval threshold goes ahead
only when the body says ``"approve": true`` — that flag is the person's approval, given up front
— and is denied otherwise (journaled, answered 403 ``approval_required``: look at the amount,
then resend with the flag). The policy's refusals (payee, asset, caps) cannot be approved away.

Status codes say what to do next: 200 paid, or no payment was needed (``outcome``); 403
``payment_refused`` (change the policy or the request), ``approval_required``, ``url_refused``
(not http(s), user info, a host outside ``http_allowed_hosts``); 404 ``unknown_agent``; 409
``payment_failed`` (the server or its facilitator did not settle; see ``reason``) or ``unreachable``.
Refused, denied and failed answers carry the ``result`` with its journal row.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from colony.identity.store import DEFAULT_AGENT, NAME_PATTERN
from colony.payments.journal import PaymentRecord, open_journal
from colony.payments.paying import PayError, PayResult, pay_request
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, ErrorOut

__all__ = ["PayIn", "router"]

router = APIRouter(tags=["payments"], dependencies=[Depends(require_auth)])

_PAY_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The spend policy refuses the payment (`payment_refused`), it needs "
                                            "`approve: true` (`approval_required`), or the URL is refused "
                                            "(`url_refused`); or a cookie request lacks its CSRF header."},
    404: {"model": ErrorOut, "description": "No agent of that name on this node (`unknown_agent`)."},
    409: {"model": ErrorOut, "description": "The server or its facilitator did not settle the payment "
                                            "(`payment_failed`), or the server did not answer (`unreachable`)."},
}


class PayIn(BaseModel):
    """A request for one of this node's agents to make, paying a 402 within its spend policy."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=4096, pattern=r"^https?://\S+$",
                     description="An http(s) URL on a host in the node's http_allowed_hosts.")
    method: Literal["GET", "POST"] = "GET"
    body: str | None = Field(default=None, max_length=100_000,
                             description="Request body for POST; JSON text is sent as application/json.")
    agent: str = Field(default=DEFAULT_AGENT, pattern=NAME_PATTERN, description="The paying agent.")
    max_amount: int | None = Field(default=None, ge=1, description="Pay at most this many atomic units.")
    approve: bool = Field(default=False, description="Approve a payment above the policy's approval threshold.")
    max_body: int = Field(default=100_000, ge=0, le=1_000_000, description="Return at most this many bytes of body.")


@router.get("/api/v1/payments", response_model=list[PaymentRecord],
            summary="The x402 payments journal (received and made, refusals included), newest first")
def payments(request: Request,
             agent: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only this agent's.")] = None,
             direction: Annotated[Literal["in", "out"] | None, Query(description="in: received; out: made.")] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50,
             before_id: Annotated[int | None, Query(ge=1, le=2**62, description="Older than this id.")] = None,
             ) -> list[PaymentRecord]:
    n = node(request)
    return open_journal(n.db, n.settings).payments(agent=agent, direction=direction, limit=limit,
                                                   before_id=before_id)


@router.post("/api/v1/payments/pay", response_model=PayResult, responses=_PAY_ERRORS,
             summary="An agent of this node requests a URL and pays its 402 within the agent's spend policy")
async def pay(request: Request, body: PayIn) -> PayResult:
    n = node(request)

    async def person(reason: str, facts: dict[str, Any]) -> str:
        return "approved" if body.approve else "denied"

    try:
        result = await pay_request(db=n.db, keyring=n.keyring, settings=n.settings, agent=body.agent, url=body.url,
                                   method=body.method, body=body.body, max_amount=body.max_amount, approve=person,
                                   max_body=body.max_body)
    except PayError as exc:
        status, code = {"unknown_agent": (404, "unknown_agent"), "unreachable": (409, "unreachable")}.get(
            exc.reason, (403, "url_refused"))
        raise APIError(status, code, str(exc)) from exc
    if result.outcome in ("paid", "not_required"):
        return result
    extra = {"result": result.model_dump(mode="json")}
    if result.outcome == "refused":
        raise APIError(403, "payment_refused", f"The spend policy of {body.agent} refuses this payment: "
                       f"{result.reason}. Nothing was signed.", **extra)
    if result.outcome == "denied":
        raise APIError(403, "approval_required", f"{result.amount_text} is above {body.agent}'s approval threshold; "
                       "nothing was paid. Resend with \"approve\": true to approve it.", **extra)
    raise APIError(409, "payment_failed", f"The payment did not go through: {result.reason}.", **extra)
