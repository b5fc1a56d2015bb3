"""tempo-x402's hardening around the SDK's ``exact`` EVM facilitator scheme.

`GuardedExactEvm` implements the SDK's facilitator scheme protocol by delegating to
`ExactEvmFacilitatorScheme` (simulation, sending, receipts) after checks the SDK leaves to the
operator:

- the signature is exactly 65 bytes with a low ``s`` (EIP-2: a high-s twin of a valid signature
  is refused, so one authorisation has one wire form);
- no self-payment, and nothing paid to the facilitator's own gas accounts;
- the window is bounded by ``validBefore − now`` (≤ ``maxTimeoutSeconds`` + a small skew) — not
  by ``validBefore − validAfter``, since the official clients send ``validAfter = 0``;
- the nonce is claimed in the node's persistent store (table ``x402_nonces``: the node's SQLite file,
  or PostgreSQL when ``COLONY_DATABASE_URL`` is set, shared by every node there) *before* the
  transfer is sent, and never released, even when sending fails: the transaction may still land,
  and a purged or released nonce would let a replay through;
- verify-then-settle runs under one lock per payer.

Only the EIP-3009 transfer method is accepted (the ``authorization`` payload); Permit2 payloads are
refused as ``invalid_payload``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from x402.interfaces import FacilitatorContext
from x402.schemas import Network, PaymentPayload, PaymentRequirements, SettleResponse, VerifyResponse

from colony.payments.credits import PayerLocks
from colony.payments.journal import PaymentJournal

__all__ = ["SECP256K1_N", "GuardedExactEvm"]

#: The order of secp256k1; a low-s signature has s <= N // 2.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: Clock skew allowed on top of maxTimeoutSeconds when bounding validBefore − now.
SKEW_S = 30


class _Scheme(Protocol):
    scheme: str
    caip_family: str

    def get_extra(self, network: Network) -> dict[str, Any] | None: ...
    def get_signers(self, network: Network) -> list[str]: ...
    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> VerifyResponse: ...
    def settle(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> SettleResponse: ...


class GuardedExactEvm:
    """The SDK's exact-EVM facilitator scheme behind Colony's checks and nonce store."""

    def __init__(self, inner: _Scheme, journal: PaymentJournal, *, locks: PayerLocks | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.journal = journal
        self.locks = locks or PayerLocks()
        self.clock = clock
        self.scheme = inner.scheme
        self.caip_family = inner.caip_family

    def get_extra(self, network: Network) -> dict[str, Any] | None:
        return self.inner.get_extra(network)

    def get_signers(self, network: Network) -> list[str]:
        return self.inner.get_signers(network)

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> VerifyResponse:
        problem, payer = self._check(payload, requirements)
        if problem is not None:
            return VerifyResponse(is_valid=False, invalid_reason=problem, payer=payer)
        return self.inner.verify(payload, requirements, context)

    def settle(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> SettleResponse:
        network = str(requirements.network)
        problem, payer = self._check(payload, requirements)
        if problem is not None or payer is None:
            return _failed(problem or "invalid_payload", network, payer)
        nonce = str(payload.payload["authorization"]["nonce"])
        with self.locks(payer.lower()):
            verdict = self.inner.verify(payload, requirements, context)
            if not verdict.is_valid:
                return _failed(verdict.invalid_reason or "invalid_payload", network, payer)
            if not self.journal.claim_nonce(network, requirements.asset, payer, nonce):
                return _failed("invalid_exact_evm_nonce_already_used", network, payer)
            # Claimed for good: whatever happens below, this authorisation is never settled again.
            return self.inner.settle(payload, requirements, context)

    # -- checks ---------------------------------------------------------------------------------
    def _check(self, payload: PaymentPayload, requirements: PaymentRequirements) -> tuple[str | None, str | None]:
        """(reason, payer): the first hardening rule the payment breaks, if any."""
        inner = payload.payload if isinstance(payload.payload, dict) else {}
        auth, signature = inner.get("authorization"), inner.get("signature")
        if not isinstance(auth, dict) or not isinstance(signature, str):
            return "invalid_payload", None
        payer, to = auth.get("from"), auth.get("to")
        if not isinstance(payer, str) or not isinstance(to, str):
            return "invalid_payload", None
        sig = _signature_bytes(signature)
        if sig is None:
            return "invalid_exact_evm_payload_signature", payer
        if int.from_bytes(sig[32:64], "big") > SECP256K1_N // 2:
            return "invalid_exact_evm_payload_signature", payer
        if payer.lower() == to.lower():
            return "invalid_exact_evm_self_payment", payer
        signers = {s.lower() for s in self.inner.get_signers(requirements.network)}
        if to.lower() in signers or requirements.pay_to.lower() in signers:
            return "invalid_exact_evm_payment_to_facilitator", payer
        try:
            valid_before = int(str(auth.get("validBefore")))
            nonce = str(auth.get("nonce"))
        except ValueError:
            return "invalid_payload", payer
        if valid_before - self.clock() > requirements.max_timeout_seconds + SKEW_S:
            return "invalid_exact_evm_payload_authorization_valid_before", payer
        if self.journal.nonce_claimed(str(requirements.network), requirements.asset, payer, nonce):
            return "invalid_exact_evm_nonce_already_used", payer
        return None, payer


def _signature_bytes(signature: str) -> bytes | None:
    """65 bytes (r ‖ s ‖ v) or None: contract-wallet and malformed signatures are refused."""
    text = signature[2:] if signature.startswith(("0x", "0X")) else signature
    if len(text) != 130:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _failed(reason: str, network: str, payer: str | None) -> SettleResponse:
    return SettleResponse(success=False, error_reason=reason, payer=payer, transaction="", network=network)
