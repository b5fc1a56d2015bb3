"""The node's facilitator: the SDK's `x402FacilitatorSync` with Colony's schemes, used in process.

`build_facilitator` registers the ``credits`` scheme on this node's ledger and, when an EVM rail is
configured, the ``exact`` scheme behind `colony.payments.evm_guard`. `EmbeddedFacilitator` hands it
to the SDK's resource server as a facilitator *client* with no HTTP hop; verify and settle run in a
worker thread, because the SDK calls scheme code synchronously and an EVM settlement waits for a
receipt (tens of milliseconds) that must not stall the event loop. The same object answers the
node's public facilitator endpoints (`colony.server.api.x402`) for other nodes.

Errors never leak internals: an unexpected exception becomes ``unexpected_verify_error`` /
``unexpected_settle_error`` with the detail in the node's log only.
"""

from __future__ import annotations

import asyncio
import logging

from x402 import x402FacilitatorSync
from x402.schemas import (
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
)
from x402.schemas.errors import SchemeNotFoundError

from colony.ledger import Ledger
from colony.payments.credits import CREDITS_NETWORK, CreditsFacilitatorScheme, PayerLocks

__all__ = ["EmbeddedFacilitator", "build_facilitator"]

log = logging.getLogger(__name__)


def build_facilitator(ledger: Ledger, *, locks: PayerLocks | None = None) -> x402FacilitatorSync:
    """A facilitator that settles ``credits`` on ``ledger`` (add EVM with `register_evm`)."""
    facilitator = x402FacilitatorSync()
    facilitator.register([CREDITS_NETWORK], CreditsFacilitatorScheme(ledger, locks=locks))
    return facilitator


class EmbeddedFacilitator:
    """An in-process facilitator client (the SDK's ``FacilitatorClient`` protocol)."""

    def __init__(self, facilitator: x402FacilitatorSync) -> None:
        self.facilitator = facilitator

    def get_supported(self) -> SupportedResponse:
        return self.facilitator.get_supported()

    async def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> VerifyResponse:
        return await asyncio.to_thread(self.verify_sync, payload, requirements)

    async def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse:
        return await asyncio.to_thread(self.settle_sync, payload, requirements)

    def verify_sync(self, payload: PaymentPayload, requirements: PaymentRequirements) -> VerifyResponse:
        try:
            return self.facilitator.verify(payload, requirements)
        except SchemeNotFoundError:
            return VerifyResponse(is_valid=False, invalid_reason=self._unsupported(payload, requirements))
        except Exception:
            log.exception("x402 verify failed unexpectedly")
            return VerifyResponse(is_valid=False, invalid_reason="unexpected_verify_error")

    def settle_sync(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse:
        try:
            return self.facilitator.settle(payload, requirements)
        except SchemeNotFoundError:
            return SettleResponse(success=False, error_reason=self._unsupported(payload, requirements), transaction="",
                                  network=requirements.network)
        except Exception:
            log.exception("x402 settle failed unexpectedly")
            return SettleResponse(success=False, error_reason="unexpected_settle_error", transaction="",
                                  network=requirements.network)


    def _unsupported(self, payload: PaymentPayload, requirements: PaymentRequirements) -> str:
        """The standard reason for a (scheme, network) this facilitator does not settle."""
        if payload.accepted.network != requirements.network:
            return "network_mismatch"
        schemes = {k.scheme for k in self.facilitator.get_supported().kinds}
        return "invalid_network" if requirements.scheme in schemes else "unsupported_scheme"
