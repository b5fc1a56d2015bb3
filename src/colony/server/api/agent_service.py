"""Agent-as-a-service: another party pays one of the node's agents to answer a prompt.

``POST /x402/agents/{name}/prompt`` with ``{"prompt": "…"}``. The route is offered only while it
has a price (``colony price agent NAME 0.5``, or ``x402_routes`` in the configuration); the x402
gate answers an unpaid call with 402 and the price, and a paid one reaches this handler with the
payment verified. The agent runs one turn (surface ``x402``: recorded and audited like any turn)
and the answer comes back as JSON with the payer named. A turn that fails answers 502, so the
gate does not settle: the payer pays for answers, not for errors. The turn runs as the named agent
(`Node.agent`): its profile's persona and model tier; a deactivated agent is not for hire (404).
The node's bearer token is not needed — the payment is the credential — and an unpriced route is
a 404 whatever the caller sends.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from colony.agent.loop import run_turn_collect
from colony.errors import IdentityError
from colony.market.profiles import AgentProfileError
from colony.server.api._deps import node
from colony.server.errors import APIError, errors
from colony.server.payments_gate import current_payment

__all__ = ["PromptIn", "PromptOut", "router"]

router = APIRouter(prefix="/x402/agents", tags=["x402"])
AgentName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=20_000)


class PromptOut(BaseModel):
    agent: str
    turn_id: str
    session_id: str
    text: str
    payer: str
    scheme: str
    amount: str


class PaymentRequiredOut(BaseModel):
    """x402 v2 puts everything in the PAYMENT-REQUIRED header; the body is an object the SDK leaves free."""

    model_config = ConfigDict(extra="allow")


_PAYMENT_REQUIRED: dict[int | str, dict[str, Any]] = {402: {
    "model": PaymentRequiredOut,
    "description": "Payment required (or the payment failed): the price is in the PAYMENT-REQUIRED header "
                   "(x402 v2, base64 JSON); pay and retry with PAYMENT-SIGNATURE."}}


@router.post("/{name}/prompt", response_model=PromptOut, summary="Pay an agent to answer a prompt",
             responses={**errors(404, 502), **_PAYMENT_REQUIRED})
async def prompt(name: AgentName, body: PromptIn, request: Request) -> PromptOut:
    paid = current_payment(request)
    if paid is None:
        raise APIError(404, "not_offered", f"Agent {name!r} is not offered for hire on this node.")
    n = node(request)
    try:
        agent_id = n.keyring.agent(name)
    except IdentityError as exc:
        raise APIError(404, "not_offered", f"Agent {name!r} is not offered for hire on this node.") from exc
    if paid.pay_to.lower() not in (agent_id.public_hex, agent_id.evm_address.lower()):
        raise APIError(404, "not_offered", f"Agent {name!r} is not offered for hire on this node.")
    try:  # the agent answers as its profile says: its persona, on its model tier
        agent = await n.agent(name=name)
    except AgentProfileError as exc:  # deactivated since the price was set: it takes no paid work
        raise APIError(404, "not_offered", f"Agent {name!r} is not offered for hire on this node.") from exc
    finished, _ = await run_turn_collect(agent, n.deps, body.prompt, surface="x402")
    if finished.status != "completed":
        raise APIError(502, "turn_failed", "The agent could not answer; you were not charged.",
                       turn_id=finished.turn_id)
    return PromptOut(agent=name, turn_id=finished.turn_id, session_id=finished.session_id, text=finished.text,
                     payer=paid.payer, scheme=paid.scheme, amount=paid.amount)
