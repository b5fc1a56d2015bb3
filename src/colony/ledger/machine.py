"""The escrow hold state machine: every legal move, as a table (like `colony.tasks.machine`).

    held ──► captured   (the held credits go to a payee: entries in both chains)
      └───► released   (the held credits go back to the payer)

Both ends are final. The store checks this table before every change and a database trigger
refuses any other UPDATE of a hold row, so an illegal move raises and changes nothing; the
verifier folds each hold's journal entries through the same table.
"""

from __future__ import annotations

from typing import Literal

from colony.ledger.errors import IllegalHoldTransitionError

__all__ = ["HOLD_STATES", "TRANSITIONS", "HoldState", "allowed", "check"]

HoldState = Literal["held", "captured", "released"]
HOLD_STATES: tuple[HoldState, ...] = ("held", "captured", "released")

TRANSITIONS: dict[HoldState, frozenset[HoldState]] = {
    "held": frozenset({"captured", "released"}),
    "captured": frozenset(),
    "released": frozenset(),
}


def allowed(from_state: HoldState) -> list[HoldState]:
    """The states reachable from ``from_state`` in one move, in table order."""
    return [s for s in HOLD_STATES if s in TRANSITIONS[from_state]]


def check(hold_id: str, from_state: HoldState, to_state: HoldState) -> None:
    """Raise `IllegalHoldTransitionError` unless the table allows the move."""
    if to_state not in TRANSITIONS[from_state]:
        raise IllegalHoldTransitionError(hold_id, from_state, to_state, list(allowed(from_state)))
