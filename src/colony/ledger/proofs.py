"""Equivocation proofs: a home node caught signing two different histories.

A home node is the only writer of its accounts' chains, so it must sign exactly one entry per
(account, seq). Two different entries for the same (account, seq), both signed by the same key,
prove that it did not — it showed one history to some peers and another to others (a double
spend across replicas). The proof is just those two events: anyone can check it with no access
to either node, no trust in whoever relays it, and nothing but the events themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from colony.identity.events import KINDS, Event, verify_event
from colony.ledger.records import Entry

__all__ = ["EquivocationProof", "find_equivocations", "verify_equivocation"]


class EquivocationProof(BaseModel):
    """Two ledger entries signed by one key for the same (account, seq) with different contents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first: Event
    second: Event

    @property
    def signer(self) -> str:
        return self.first.pubkey


def verify_equivocation(proof: EquivocationProof) -> bool:
    """True when the two events really convict their signer (ids and signatures recomputed)."""
    a, b = proof.first, proof.second
    if a.kind != KINDS["ledger_entry"] or b.kind != KINDS["ledger_entry"]:
        return False
    if a.pubkey != b.pubkey or a.id == b.id:
        return False
    if not (verify_event(a) and verify_event(b)):
        return False
    try:
        ea, eb = Entry.from_event(a), Entry.from_event(b)
    except ValueError:
        return False
    return (ea.body.account, ea.body.seq) == (eb.body.account, eb.body.seq)


def find_equivocations(mine: Iterable[Entry], theirs: Iterable[Entry]) -> list[EquivocationProof]:
    """Proofs for every (signer, account, seq) where two feeds hold different entries.

    Only pairs that verify are returned: a forged or corrupted entry in a feed convicts no one.
    """
    index = {(e.signer, e.body.account, e.body.seq): e for e in mine}
    proofs = []
    for e in theirs:
        other = index.get((e.signer, e.body.account, e.body.seq))
        if other is not None and other.id != e.id:
            proof = EquivocationProof(first=other.event(), second=e.event())
            if verify_equivocation(proof):
                proofs.append(proof)
    return proofs
