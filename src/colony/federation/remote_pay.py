"""Paying a winner on another node through x402: the winner's invoice, paid from the escrow, settled at home.

The winner's node (B) serves an x402-protected invoice, ``POST /federation/v1/market/auctions/{id}/invoice``
(`invoice`), priced at the award's price in the **poster's node's** credits (``asset`` = A's node key,
``payTo`` = the winning agent, ``extra.escrow`` = the hold that backs the price on A's ledger). Its
resource server is the official SDK's (`x402ResourceServer` and its FastAPI middleware), with a
`CreditsRouter` that hands verify and settle to the poster's node — the credits' home — at
``/federation/v1/market/x402/{verify,settle}``, NIP-98 signed by this node's key (`RemoteFacilitator`).

The poster's node (A), once the verdict passed, pays it (`pay_escrow`) with the SDK's client: the
poster signs, through `CreditsEscrowClientScheme`, an authorisation that names the escrow hold and
carries the hold's own nonce; A's facilitator settles it by capturing that hold to the winner
(`colony.payments.credits`). Every request A sends is NIP-98 signed by A's node key, the retry
with ``PAYMENT-SIGNATURE`` too (`_SignEach`: one fresh header per request, which the receiver's
replay guard needs). Both sides journal the payment (out on A, in on B).

Why this is exactly once: the money is the escrow hold, and a hold closes once; every retry —
the invoice asked again after a lost answer, a pass after a crash — signs the same nonce for the
same hold and is answered with the same settlement. A asks `close_paid` only after its own ledger
shows the hold captured to the winner, never on the strength of B's answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from x402 import x402Client, x402ResourceServer
from x402.http import x402HTTPClient
from x402.http.clients.httpx import x402AsyncTransport
from x402.http.constants import PAYMENT_RESPONSE_HEADER
from x402.http.middleware.fastapi import payment_middleware
from x402.http.types import PaymentOption, RouteConfig
from x402.schemas import AssetAmount, PaymentPayload, PaymentRequirements, SettleResponse
from x402.schemas.hooks import SettleResultContext

from colony.config import PeerLedger
from colony.federation.client import nip98_header
from colony.identity.keys import SchnorrKey
from colony.payments.credits import (
    CREDITS_NETWORK,
    CREDITS_SCHEME,
    UNIT,
    CreditsEscrowClientScheme,
    CreditsServerScheme,
)
from colony.payments.journal import PaymentJournal, PaymentRecord
from colony.payments.remote import CreditsRouter, RemoteFacilitator
from colony.payments.service import NodePayments

__all__ = ["FACILITATOR_BASE", "Invoice", "invoice", "invoice_path", "pay_escrow"]

#: Where a poster's node answers its members' verify and settle (RemoteFacilitator appends ``/x402/…``).
FACILITATOR_BASE = "/federation/v1/market"
#: The invoice asks the payer to sign an authorisation valid at least this long.
MAX_TIMEOUT_S = 60
TIMEOUT_S = 20.0


def invoice_path(auction: str) -> str:
    return f"/federation/v1/market/auctions/{auction}/invoice"


class _SignEach(httpx.AsyncBaseTransport):
    """Signs every request it sends with a fresh NIP-98 header (the SDK's paid retry included)."""

    def __init__(self, key: SchnorrKey, inner: httpx.AsyncBaseTransport) -> None:
        self.key, self.inner = key, inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        request.headers["authorization"] = nip98_header(self.key, str(request.url), request.method, body)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- the poster's node: pay the invoice from the escrow ---------------------------------------------
async def pay_escrow(*, journal: PaymentJournal, node_key: SchnorrKey, poster_key: SchnorrKey, poster_name: str,
                     base_url: str, auction: str, hold_id: str, nonce: str, winner: str, price: int,
                     asset: str, transport: httpx.AsyncBaseTransport | None = None) -> SettleResponse | None:
    """Pay the winner's invoice on its node at ``base_url``: the settlement, or None when it was not paid."""
    client = x402Client()
    client.register(CREDITS_NETWORK, CreditsEscrowClientScheme(poster_key, hold_id, nonce, pay_to=winner,
                                                                amount=price))
    client.set_spend_controls({"allowed_assets": [
        {"network": CREDITS_NETWORK, "asset": asset, "max_amount_per_payment": str(price)}]})
    http = x402HTTPClient(client)
    url = base_url.rstrip("/") + invoice_path(auction)
    inner = _SignEach(node_key, transport or httpx.AsyncHTTPTransport())
    status, reason, settled = 0, "", None
    try:
        async with httpx.AsyncClient(transport=x402AsyncTransport(http, transport=inner), timeout=TIMEOUT_S,
                                     follow_redirects=False, trust_env=False) as session:
            response = await session.post(url, content=b"{}", headers={"content-type": "application/json"})
            status = response.status_code
            if response.headers.get(PAYMENT_RESPONSE_HEADER):
                settled = http.get_payment_settle_response(response.headers.get)
    except Exception as exc:  # the SDK wraps everything; the payment simply did not happen this time
        reason = f"{type(exc).__name__}: {exc}"[:300]
    ok = settled is not None and settled.success and 200 <= status < 300
    journal.record(PaymentRecord(
        at=time.time(), direction="out", agent=poster_name, scheme=CREDITS_SCHEME, network=CREDITS_NETWORK,
        asset=asset, amount=str(price), payer=poster_key.public_hex, pay_to=winner, resource=url,
        status="settled" if ok else "failed", tx=settled.transaction if ok and settled else None,
        reason=None if ok else (reason or (settled.error_reason if settled else None) or f"status {status}")))
    return settled if ok else None


# -- the winner's node: the invoice ------------------------------------------------------------------
class Invoice:
    """What one invoice asks: the escrow on the poster's ledger that pays the winner, and where that ledger is."""

    def __init__(self, *, auction: str, origin: str, origin_url: str, winner: str, winner_name: str, price: int,
                 escrow: str) -> None:
        self.auction, self.origin, self.origin_url = auction, origin, origin_url.rstrip("/")
        self.winner, self.winner_name, self.price, self.escrow = winner, winner_name, price, escrow

    def route(self) -> RouteConfig:
        price = AssetAmount(amount=str(self.price), asset=self.origin,
                            extra={"unit": UNIT, "decimals": 6, "escrow": self.escrow})
        return RouteConfig(accepts=[PaymentOption(scheme=CREDITS_SCHEME, network=CREDITS_NETWORK, pay_to=self.winner,
                                                  price=price, max_timeout_seconds=MAX_TIMEOUT_S)],
                           description=f"market auction {self.auction[:16]}: the winner's price",
                           mime_type="application/json")


async def invoice(request: Request, inv: Invoice, payments: NodePayments, node_key: SchnorrKey,
                  on_paid: Callable[[str], Awaitable[None]]) -> Response:
    """Answer the invoice through the SDK's payment middleware: 402 with the requirement, or — paid and
    settled by the poster's node — 200 with a receipt; ``on_paid(transaction)`` runs after settlement."""
    peer = RemoteFacilitator(PeerLedger(ledger=inv.origin, url=inv.origin_url + FACILITATOR_BASE), node_key)
    server = x402ResourceServer(CreditsRouter(payments.client, {inv.origin: peer}))
    server.register(CREDITS_NETWORK, CreditsServerScheme(payments.ledger.node))
    settled: list[str] = []

    async def journal(ctx: SettleResultContext) -> None:
        settled.append(ctx.result.transaction)
        await asyncio.to_thread(_record_in, payments, ctx.payment_payload, ctx.requirements, inv,
                                ctx.result.transaction)

    server.on_after_settle(journal)
    gate = payment_middleware({f"POST {invoice_path(inv.auction)}": inv.route()}, server)

    async def receipt(_: Request) -> Response:
        body = json.dumps({"auction": inv.auction, "winner": inv.winner, "price": inv.price, "escrow": inv.escrow})
        return StreamingResponse(iter([body.encode()]), media_type="application/json")

    response = await gate(request, receipt)
    if settled and response.status_code == 200:
        await on_paid(settled[0])
    return response if response.status_code != 500 else JSONResponse(
        {"code": "payment_error", "message": "The payment could not be processed; try again."}, status_code=502)


def _record_in(payments: NodePayments, payload: object, requirements: object, inv: Invoice, tx: str) -> None:
    if not isinstance(payload, PaymentPayload) or not isinstance(requirements, PaymentRequirements):
        return
    auth = payload.payload.get("authorization") if isinstance(payload.payload, dict) else None
    payer = auth.get("pubkey") if isinstance(auth, dict) else None
    payments.journal.record(PaymentRecord(
        at=time.time(), direction="in", agent=inv.winner_name, scheme=requirements.scheme,
        network=str(requirements.network), asset=requirements.asset, amount=requirements.amount,
        payer=payer if isinstance(payer, str) else None, pay_to=requirements.pay_to,
        resource=invoice_path(inv.auction), status="settled", tx=tx or None))
