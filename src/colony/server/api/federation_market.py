"""Work across nodes over HTTP, under ``/federation/v1/market`` (every route: NIP-98, trusted members only).

    POST /federation/v1/market/events                  a member's bidder's signed commit or reveal, for an
                                                       auction this node's agents posted (the poster's node)
    POST /federation/v1/market/auctions/{id}/invoice   x402: the price of an auction one of this node's agents
                                                       won elsewhere, paid from that auction's escrow (the
                                                       winner's node; 402 with the requirement, then 200)
    POST /federation/v1/market/x402/verify             the poster's node's facilitator, for its members'
    POST /federation/v1/market/x402/settle             invoices: escrow payments of its own auctions only

Importing this module registers the federation market's message handlers and market pass step
(`colony.federation.remote_market`). A refusal is a JSON error: 403 (not a member, a bid or
payment that is not the caller's to make), 404 (no such auction here), 409 (too late, too early,
a second bid; an invoice not due), 400 (a facilitator body that does not parse, in the x402 shape).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, NoReturn

import anyio
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from x402.schemas import PaymentRequirements, SettleRequest, VerifyRequest

from colony.federation import _store, remote_bidding, remote_market, remote_store
from colony.federation.errors import Refused
from colony.federation.remote_pay import Invoice, invoice
from colony.identity.events import Event
from colony.market.service import Market
from colony.payments.service import NodePayments
from colony.server.api._deps import node
from colony.server.api.agent_service import PaymentRequiredOut
from colony.server.api.federation import member_caller
from colony.server.api.x402 import InvalidRequestOut
from colony.server.errors import APIError, ErrorOut
from colony.server.nip98 import NIP98_RESPONSES

__all__ = ["router"]

router = APIRouter(prefix="/federation/v1/market", tags=["federation"])
Caller = Annotated[Event, Depends(member_caller)]
AuctionId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The auction's id (64 hex).")]


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


def _refused(exc: Refused) -> NoReturn:
    raise APIError(exc.status, exc.reason, str(exc), **exc.extra) from exc


class BidOut(BaseModel):
    accepted: bool
    duplicate: bool = False


@router.post("/events", response_model=BidOut, responses={
    **NIP98_RESPONSES,
    403: _err("Not a member, or the bid does not verify, or its bidder is not an agent the caller announced "
              "(`bad_signature`), or is this node's own (`invalid`)."),
    404: _err("No auction of this node's agents has that id (`not_found`)."),
    409: _err("Refused by the auction's rules: `late_commit`, `early_reveal`, `late_reveal`, `duplicate`."),
}, summary="A member's bidder's signed commit or reveal (NIP-98, member)")
def post_event(request: Request, body: Event, caller: Caller) -> BidOut:
    try:
        taken = remote_market.accept_bid(node(request), caller.pubkey, body)
    except Refused as exc:
        _refused(exc)
    return BidOut(accepted=True, duplicate=not taken)


def _invoice_of(request: Request, auction: str, caller: str) -> Invoice:
    n = node(request)
    row = remote_store.get_remote(n.db, auction)
    if row is None or row["origin"] != caller:
        raise APIError(404, "not_found", f"No auction {auction[:16]}… of your node was won here.")
    winner = n.keyring.by_public_key(row["winner"]) if row["winner"] else None
    if row["state"] not in ("won", "paid") or row["escrow_hold"] is None or winner is None:
        raise APIError(409, "not_due", f"Auction {auction[:16]}… was not won by an agent of this node.")
    member = _store.get_member(n.db, caller)
    origin_url = member["url"] if member is not None else row["origin_url"]
    return Invoice(auction=auction, origin=row["origin"], origin_url=origin_url, winner=row["winner"],
                   winner_name=winner.name, price=row["price"], escrow=row["escrow_hold"])


@router.post("/auctions/{auction}/invoice", responses={
    **NIP98_RESPONSES,
    402: {"model": PaymentRequiredOut,
          "description": "Payment required: the PAYMENT-REQUIRED header names the price, the poster's credits, the "
                         "winner and the escrow that pays it (x402 v2, scheme `credits`)."},
    404: _err("No auction of the caller's node was won here (`not_found`)."),
    409: _err("The auction was not won by an agent of this node (`not_due`)."),
}, summary="The winner's invoice, paid through x402 from the auction's escrow (NIP-98, the auction's node)")
async def pay_invoice(request: Request, auction: AuctionId, caller: Caller) -> Response:
    n = node(request)
    inv = await anyio.to_thread.run_sync(_invoice_of, request, auction, caller.pubkey)
    payments: NodePayments = request.app.state.payments
    node_key = await anyio.to_thread.run_sync(lambda: n.keyring.node().schnorr_key)

    async def paid(transaction: str) -> None:
        await asyncio.to_thread(remote_bidding.mark_paid, n, auction, transaction)

    return await invoice(request, inv, payments, node_key, paid)


def _escrow_of_member(request: Request, requirements: PaymentRequirements, caller: str) -> bool:
    """Whether the requirement pays an escrow of this node's auction that ``caller``'s agent won."""
    hold = (requirements.extra or {}).get("escrow")
    if not isinstance(hold, str):
        return False
    market = Market(node(request))
    row = market.by_escrow(hold)
    if row is None or row["poster"] not in market.own_accounts() or row["winner"] != requirements.pay_to.lower():
        return False
    bidder = remote_store.bidder(market.node.db, row["id"], row["winner"])
    return bidder is not None and bidder["node"] == caller


async def _facilitate(request: Request, caller: str, op: str) -> JSONResponse:
    raw = await request.body()
    try:
        req: VerifyRequest | SettleRequest = (VerifyRequest if op == "verify" else SettleRequest).model_validate_json(raw)
    except (ValidationError, ValueError):
        return JSONResponse({"isValid": False, "invalidReason": "invalid_payload"} if op == "verify" else
                            {"success": False, "errorReason": "invalid_payload", "transaction": "", "network": ""},
                            status_code=400)
    if not await anyio.to_thread.run_sync(_escrow_of_member, request, req.payment_requirements, caller):
        raise APIError(403, "forbidden", "Members settle here only the escrow of an auction of this node that their "
                                         "agent won.")
    client = request.app.state.payments.client
    result = await anyio.to_thread.run_sync(client.verify_sync if op == "verify" else client.settle_sync,
                                            req.payment_payload, req.payment_requirements)
    return JSONResponse(result.model_dump(by_alias=True, exclude_none=True))


_FACILITATOR: dict[int | str, dict[str, Any]] = {
    **NIP98_RESPONSES,
    400: {"model": InvalidRequestOut,
          "description": "The body is not a facilitator request (an x402-shaped invalid_payload answer)."},
    403: _err("Not a member, or not an escrow payment of an auction this node's agents posted and the caller's "
              "agent won (`forbidden`)."),
}


@router.post("/x402/verify", responses=_FACILITATOR, summary="Verify a member's escrow payment (NIP-98, member)")
async def verify(request: Request, caller: Caller) -> JSONResponse:
    return await _facilitate(request, caller.pubkey, "verify")


@router.post("/x402/settle", responses=_FACILITATOR,
             summary="Settle a member's escrow payment: capture the escrow to the winner (NIP-98, member)")
async def settle(request: Request, caller: Caller) -> JSONResponse:
    return await _facilitate(request, caller.pubkey, "settle")
