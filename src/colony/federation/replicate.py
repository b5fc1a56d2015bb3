"""Replication in the running colony: pulling the live members' ledgers, and spreading equivocation proofs.

`colony.federation.replication` knows how to sync one origin from one source; this module decides
when and from where. Every ``federation_sync_every`` heartbeats the loop calls `sync_member` for each
live member, one at a time and off the event loop: the member's own ledger routes over HTTP
(`HttpSource`, every request NIP-98 signed by this node's key, which the member accepts because it
trusts this node), at the URL of the member's latest announcement (so a member that restarted on
another port is still followed), its ledger and then its reputation events. A member gets at most
`budget_s` seconds: past it every further request fails, the sync stops where it is, and what was
verified and stored stays. The replica's heads only ever advance (the replica store refuses
anything that does not extend them), so each sync moves towards the member's *current* root, and a
member that serves less than the replica holds is reported (``rolled_back``), never followed back.

An equivocation found by a sync (or imported) is stored unreported; `gossip_proofs` sends every
unreported proof to every trusted member as a message of kind `PROOF_KIND` (its content is the
proof's two events) and marks it reported, so each node passes each proof on once and a proof
reaches nodes that do not know its finder. A receiver verifies it (`handle_proof` →
`import_proof`): a proof that convicts nobody is refused and recorded as an incident; a good one is
kept, `slash_equivocators` slashes the node's own agents it convicts, once, and a member node it
convicts is removed and its agents' awards given up (`colony.federation.convict`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from colony.errors import ColonyError
from colony.federation.membership import record
from colony.federation.messages import register_handler
from colony.federation.outbox import broadcast
from colony.federation.replica_sources import HttpSource, LedgerSource, Meter
from colony.federation.replica_wire import (
    EntryPage,
    ProofRejectedError,
    ReputationPage,
    RootInfo,
    SourceError,
)
from colony.federation.replication import (
    equivocations,
    import_proof,
    mark_reported,
    slash_equivocators,
    sync,
    sync_reputation,
)
from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.ledger.proofs import EquivocationProof

if TYPE_CHECKING:
    from colony.node import Node
    from colony.store import Database

__all__ = ["MAX_PROBLEMS", "PROOF_KIND", "MemberSync", "gossip_proofs", "handle_proof", "slash", "sync_member"]

log = logging.getLogger("colony.federation")

#: An equivocation proof passed between members: the content is `EquivocationProof` JSON.
PROOF_KIND = 7320
#: Problems kept per member from its last sync (the first ones; the count is in the replica's totals).
MAX_PROBLEMS = 5


@dataclass(frozen=True)
class MemberSync:
    """What the last sync with one member did (kept in memory by the loop; totals are in the database)."""

    origin: str
    url: str
    at: float
    seconds: float
    mode: str
    remote_root: str | None
    local_root: str
    entries_added: int
    reputation_added: int
    proofs: int
    problems: tuple[str, ...]

    @property
    def in_sync(self) -> bool:
        return self.remote_root == self.local_root


class _Budgeted:
    """A source that refuses every request after ``deadline`` (monotonic): a bound on one member's sync."""

    def __init__(self, inner: LedgerSource, deadline: float) -> None:
        self.inner, self.deadline = inner, deadline

    @property
    def meter(self) -> Meter:
        return self.inner.meter

    def _check(self) -> None:
        if time.monotonic() > self.deadline:
            raise SourceError("this member's time budget for one sync is spent; the next sync continues",
                              reason="budget")

    def root(self) -> RootInfo:
        self._check()
        return self.inner.root()

    def children(self, prefix: str) -> dict[str, str]:
        self._check()
        return self.inner.children(prefix)

    def entries(self, account: str, after_seq: int, limit: int) -> EntryPage:
        self._check()
        return self.inner.entries(account, after_seq, limit)

    def scan(self, after_account: str, after_seq: int, limit: int) -> EntryPage:
        self._check()
        return self.inner.scan(after_account, after_seq, limit)

    def reputation_events(self, after_cursor: int, limit: int) -> ReputationPage:
        self._check()
        return self.inner.reputation_events(after_cursor, limit)


def sync_member(db: Database, key: SchnorrKey, origin: str, url: str, *, budget_s: float,
                timeout_s: float) -> MemberSync:
    """Pull ``origin``'s ledger and reputation events from its routes at ``url`` within ``budget_s``."""
    started = time.monotonic()
    with HttpSource(url, key, timeout_s=timeout_s) as http:
        source = _Budgeted(http, started + budget_s)
        ledger = sync(db, origin, source)
        reputation = sync_reputation(db, origin, source)
    problems = [f"{p.code}: {p.message}" for p in [*ledger.problems, *reputation.problems]]
    return MemberSync(origin=origin, url=url, at=time.time(), seconds=round(time.monotonic() - started, 3),
                      mode=ledger.mode, remote_root=ledger.remote_root, local_root=ledger.root_after,
                      entries_added=ledger.entries_added, reputation_added=reputation.added,
                      proofs=len(ledger.proofs), problems=tuple(problems[:MAX_PROBLEMS]))


def slash(node: Node) -> int:
    """Slash this node's agents that stored proofs convict (once each) and convict the member nodes
    they convict (`colony.federation.convict`); returns how many agents were slashed."""
    # Imported here: convict → remote_faults → loop → this module.
    from colony.federation.convict import convict

    try:
        convict(node)
    except ColonyError as exc:  # the next proof, or the market pass, applies it again
        log.warning("federation: convicting an equivocating member failed: %s", exc)
    try:
        return len(slash_equivocators(node))
    except ColonyError as exc:  # the market refused: the proof stays unslashed and the next pass retries
        log.warning("federation: slashing an equivocator failed: %s", exc)
        return 0


def gossip_proofs(node: Node) -> int:
    """Send every unreported proof to every trusted member, once; returns how many were sent."""
    fresh = equivocations(node.db, unreported=True)
    for stored in fresh:
        broadcast(node, PROOF_KIND, stored.proof.model_dump_json())
    if fresh:
        mark_reported(node.db, [p.id for p in fresh])
        log.warning("federation: passed %d equivocation proof(s) on to the colony", len(fresh))
    return len(fresh)


def handle_proof(node: Node, event: Event) -> None:
    """Kind 7320: verify and keep a member's proof; a bogus one is refused and recorded."""
    try:
        proof = EquivocationProof.model_validate_json(event.content)
        new = import_proof(node.db, proof)
    except (ValidationError, ProofRejectedError) as exc:
        why = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        record(node.db, event.pubkey, "bad_signature", f"equivocation proof refused: {why}")
        return
    if new:
        log.warning("federation: %s… signed two ledger histories (proof from %s…)", proof.signer[:12],
                    event.pubkey[:12])
        slash(node)


register_handler(PROOF_KIND, handle_proof)
