"""The node's facilitator over HTTP, for other nodes: ``GET /x402/supported``, ``POST /x402/verify``,
``POST /x402/settle`` (the x402 facilitator API, v2 bodies, camelCase).

``/supported`` is public (it is what the conformance tools and clients read). Verify and settle
move or commit money, so they need one of two credentials, checked before the body is parsed:

- ``X-Colony-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body under
  ``COLONY_X402_FACILITATOR_SECRET``, compared in constant time (refused when no secret is set);
- ``Authorization: Nostr <event>`` (NIP-98, the body's hash in its ``payload`` tag) signed by a known
  peer (an introduced agent card, or a node listed in ``x402_peer_ledgers``) or by one of this
  node's own identities.

Answers carry the standard fields only; a malformed body is a 400 with a generic message, and an
unexpected failure is ``unexpected_verify_error``/``unexpected_settle_error`` — no internals.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from x402.schemas import SettleRequest, VerifyRequest

from colony.errors import Nip98Error
from colony.identity import verify_auth
from colony.identity.nip98 import sqlite_replay_guard
from colony.identity.peers import known_peers
from colony.payments.service import NodePayments
from colony.server.api._deps import node
from colony.server.errors import APIError, ErrorOut
from colony.server.nip98 import request_url

__all__ = ["router"]

router = APIRouter(prefix="/x402", tags=["x402"])
SIGNATURE_HEADER = "x-colony-signature"


def _payments(request: Request) -> NodePayments:
    payments: NodePayments = request.app.state.payments
    return payments


def _supported_json(payments: NodePayments) -> dict[str, Any]:
    doc: dict[str, Any] = payments.client.get_supported().model_dump(by_alias=True, exclude_none=True)
    return doc


@router.get("/supported", summary="The payment kinds this node's facilitator settles")
def supported(request: Request) -> JSONResponse:
    return JSONResponse(_supported_json(_payments(request)))


async def _authenticate(request: Request, body: bytes) -> str:
    """Who is calling (``hmac`` or a public key); 401 with a generic message otherwise."""
    n = node(request)
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is not None:
        secret = n.settings.x402_facilitator_secret
        expected = "sha256=" + hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest() \
            if secret is not None else ""
        if secret is not None and hmac.compare_digest(signature.strip().encode(), expected.encode()):
            return "hmac"
        raise APIError(401, "unauthorized", "The request is not authenticated.")
    header, url, method = request.headers.get("authorization"), request_url(request), request.method
    if header is None or not header.startswith("Nostr "):
        raise APIError(401, "unauthorized", "The request is not authenticated.")
    guard = sqlite_replay_guard(n.db)

    def check() -> str:
        event = verify_auth(header, url=url, method=method, body=body, replay=guard)
        trusted = ({p["pubkey"] for p in known_peers(n.db)} | {i.public_hex for i in n.keyring.all()}
                   | {p.ledger for p in n.settings.x402_peer_ledgers})
        if event.pubkey not in trusted:
            raise Nip98Error("unknown signer", reason="forbidden")
        if not any(t[:1] == ["payload"] for t in event.tags):
            raise Nip98Error("the payload tag is required", reason="payload")
        return event.pubkey

    try:
        return await anyio.to_thread.run_sync(check)
    except Nip98Error as exc:
        raise APIError(401, "unauthorized", "The request is not authenticated.", reason=exc.reason) from exc


_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["x402Version", "paymentPayload", "paymentRequirements"],
    "properties": {"x402Version": {"type": "integer"}, "paymentPayload": {"type": "object"},
                   "paymentRequirements": {"type": "object"}}}}}}}
class InvalidRequestOut(BaseModel):
    """The facilitator API's answer to a body it cannot read (a verify or settle response shape)."""

    isValid: bool | None = None
    invalidReason: str | None = None
    success: bool | None = None
    errorReason: str | None = None


_FACILITATOR_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": InvalidRequestOut,
          "description": "The body is not a facilitator request: a generic invalid_payload answer in the x402 shape."},
    401: {"model": ErrorOut, "description": "Neither a valid X-Colony-Signature HMAC nor a NIP-98 header by a "
                                            "known peer."},
}


def _bad_request() -> JSONResponse:
    return JSONResponse({"isValid": False, "invalidReason": "invalid_payload"}, status_code=400)


@router.post("/verify", summary="Verify a payment (authenticated)", openapi_extra=_BODY,
             responses=_FACILITATOR_ERRORS)
async def verify(request: Request) -> JSONResponse:
    body = await request.body()
    await _authenticate(request, body)
    try:
        req = VerifyRequest.model_validate_json(body)
    except (ValidationError, ValueError):
        return _bad_request()
    payments = _payments(request)
    result = await anyio.to_thread.run_sync(payments.client.verify_sync, req.payment_payload,
                                            req.payment_requirements)
    return JSONResponse(result.model_dump(by_alias=True, exclude_none=True))


@router.post("/settle", summary="Settle a payment (authenticated)", openapi_extra=_BODY,
             responses=_FACILITATOR_ERRORS)
async def settle(request: Request) -> JSONResponse:
    body = await request.body()
    await _authenticate(request, body)
    try:
        req = SettleRequest.model_validate_json(body)
    except (ValidationError, ValueError):
        return JSONResponse({"success": False, "errorReason": "invalid_payload", "transaction": "", "network": ""},
                            status_code=400)
    payments = _payments(request)
    result = await anyio.to_thread.run_sync(payments.client.settle_sync, req.payment_payload,
                                            req.payment_requirements)
    return JSONResponse(result.model_dump(by_alias=True, exclude_none=True))
