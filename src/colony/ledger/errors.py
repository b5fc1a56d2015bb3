"""The ledger's errors: a branch of Colony's one exception tree (`colony.errors.ColonyError`).

    LedgerError                       the credit ledger
    ├── InvalidAuthorisationError     a signed authorisation that cannot be applied as sent
    │                                 (bad signature, not canonical, expired window, self-payment…)
    ├── TransferRefusedError          a well-formed transfer refused by the ledger's state
    │                                 (insufficient funds, nonce used for something else); recorded
    ├── UnknownAccountError           no such account or agent
    ├── HoldNotFoundError             no hold with that id
    └── IllegalHoldTransitionError    a hold move its state machine forbids (nothing changed)

Each carries a stable ``code`` (x402's reason strings where one exists: ``insufficient_funds``,
``invalid_signature``, ``nonce_already_used``…), so the API answers a generic code and the
message says how to fix it. They never log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colony.errors import ColonyError

if TYPE_CHECKING:
    from colony.ledger.records import TransferResult

__all__ = [
    "HoldNotFoundError",
    "IllegalHoldTransitionError",
    "InvalidAuthorisationError",
    "LedgerError",
    "TransferRefusedError",
    "UnknownAccountError",
]


class LedgerError(ColonyError):
    code = "ledger_error"


class InvalidAuthorisationError(LedgerError):
    """Refused before any state was read or written: the nonce is not consumed."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class TransferRefusedError(LedgerError):
    """Refused by the ledger's state; the refusal is the nonce's recorded (first) result."""

    def __init__(self, result: TransferResult, message: str) -> None:
        self.result = result
        self.code = result.reason or "refused"
        super().__init__(message)


class UnknownAccountError(LedgerError):
    code = "unknown_account"


class HoldNotFoundError(LedgerError):
    code = "hold_not_found"

    def __init__(self, hold_id: str) -> None:
        self.hold_id = hold_id
        super().__init__(f"No hold {hold_id}. Holds are listed by `colony wallet history` and the wallet API.")


class IllegalHoldTransitionError(LedgerError):
    code = "illegal_transition"

    def __init__(self, hold_id: str, from_state: str, to_state: str, allowed: list[str]) -> None:
        self.hold_id, self.from_state, self.to_state, self.allowed = hold_id, from_state, to_state, allowed
        options = ", ".join(allowed) or "nothing (it is final)"
        super().__init__(f"Hold {hold_id} cannot go from {from_state} to {to_state}; "
                         f"from {from_state} it may go to {options}.")
