"""Credits of another node: verified and settled by that node's facilitator, over HTTP.

A payer spends only on its home ledger (one writer per account), so when an agent homed on node
B pays a route on node A, A's resource server offers ``credits`` with ``asset`` = B's node key and
hands verify and settle to B's ``/x402/verify`` and ``/x402/settle``, each request NIP-98 signed
by A's node key (B accepts A because A is in its ``x402_peer_ledgers`` too). B's ledger debits the
payer and credits A's agent's account there.

`CreditsRouter` is the facilitator client the node's resource server sees: the embedded
facilitator for its own credits and the EVM rail, the peer's facilitator for a peer's credits.
A peer that answers garbage, an error status or nothing yields a generic
``unexpected_*_error`` — never a success.
"""

from __future__ import annotations

import json
import logging

import httpx
from x402.schemas import (
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
)

from colony.config import PeerLedger
from colony.identity.keys import SchnorrKey
from colony.identity.nip98 import auth_header
from colony.payments.credits import CREDITS_SCHEME
from colony.payments.facilitator import EmbeddedFacilitator

__all__ = ["CreditsRouter", "RemoteFacilitator"]

log = logging.getLogger(__name__)
#: A peer's facilitator must answer within this (settle included).
TIMEOUT_S = 20.0


class RemoteFacilitator:
    """Another node's facilitator endpoints, NIP-98 signed by this node's key."""

    def __init__(self, peer: PeerLedger, key: SchnorrKey, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.peer = peer
        self.base = peer.url.rstrip("/") + "/x402"
        self.key = key
        self.transport = transport

    async def _post(self, op: str, payload: PaymentPayload, requirements: PaymentRequirements) -> dict[str, object]:
        body = json.dumps({"x402Version": payload.x402_version,
                           "paymentPayload": payload.model_dump(by_alias=True, exclude_none=True),
                           "paymentRequirements": requirements.model_dump(by_alias=True, exclude_none=True)},
                          separators=(",", ":")).encode()
        url = f"{self.base}/{op}"
        headers = {"content-type": "application/json", "authorization": auth_header(self.key, url, "POST", body)}
        async with httpx.AsyncClient(timeout=TIMEOUT_S, transport=self.transport, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"the peer's /{op} answered {response.status_code}")
        data = response.json()
        if not isinstance(data, dict):
            raise RuntimeError(f"the peer's /{op} answered a non-object")
        return data

    async def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> VerifyResponse:
        try:
            return VerifyResponse.model_validate(await self._post("verify", payload, requirements))
        except Exception as exc:  # the peer's failure is the payment's failure, never a pass
            log.warning("x402: verify at peer %s failed: %s", self.peer.url, exc)
            return VerifyResponse(is_valid=False, invalid_reason="unexpected_verify_error")

    async def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse:
        try:
            return SettleResponse.model_validate(await self._post("settle", payload, requirements))
        except Exception as exc:
            log.warning("x402: settle at peer %s failed: %s", self.peer.url, exc)
            return SettleResponse(success=False, error_reason="unexpected_settle_error", transaction="",
                                  network=requirements.network)


class CreditsRouter:
    """The resource server's facilitator client: embedded, or the peer whose credits are paid."""

    def __init__(self, embedded: EmbeddedFacilitator, peers: dict[str, RemoteFacilitator]) -> None:
        self.embedded = embedded
        self.peers = peers

    def get_supported(self) -> SupportedResponse:
        return self.embedded.get_supported()

    def _route(self, requirements: PaymentRequirements) -> EmbeddedFacilitator | RemoteFacilitator:
        if requirements.scheme == CREDITS_SCHEME:
            peer = self.peers.get(requirements.asset.lower())
            if peer is not None:
                return peer
        return self.embedded

    async def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> VerifyResponse:
        return await self._route(requirements).verify(payload, requirements)

    async def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse:
        return await self._route(requirements).settle(payload, requirements)
