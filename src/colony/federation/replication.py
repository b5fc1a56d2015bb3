"""Replication: keeping verified copies of peers' ledgers and reputation events, and convicting a
peer that signed two histories.

How a sync with one origin (a peer's node key) goes — `sync`:

1. ask the source for its state root and compare it with the root recomputed from this replica's
   heads of that origin (`colony.ledger.merkle`, the same leaf hash): equal means every account
   agrees, and the sync is over after one request;
2. otherwise find the accounts that differ: on a first sync (no heads yet) by pulling every entry
   in pages (`LedgerSource.scan`, a few requests per thousand entries, instead of walking a whole
   tree one node per request); afterwards with `merkle.diff`, which asks only for the children of
   differing subtrees — about DEPTH requests per changed account, whatever the number of accounts.
   After a long partition the diff costs more than the scan (measured: three requests per changed
   account against a fraction of a millisecond per entry scanned), so when the source holds more
   than `RESCAN_SHARE` of its entries beyond this replica's count — at most that many accounts
   changed, at least one entry each — the sync scans again instead (``rescan``): accounts it holds
   are checked at their head (the source's entry at the head's seq must be the same entry, so the
   chains agree below it: hash links) and only what follows is verified and stored;
3. for each such account pull the entries after the replica's head, verify them
   (`colony.federation.replica_verify`: hashes, signatures by the origin, cited authorisations
   signed by their payers, the chain from the head, balances never negative) and store them in
   one transaction — or nothing, with the problems in the result;
4. an entry for an (account, seq) the replica already holds with another content is an
   equivocation: the two events, both signed by the origin, are an `EquivocationProof`; it is
   verified, stored (``federation_equivocations``), the origin marked convicted, and that
   account's sync stops there.

Trust: nothing a source says is believed that can be recomputed. The tree only guides the search
(a lying tree is caught by the hashes its parents announced, and costs the liar nothing but a
failed sync); the entries are verified one by one. A source may be the origin or any replica of it
(`ReplicaSource`): the signatures, not the messenger, make the data good, so an origin that is
gone can still be replicated from its peers, and one that showed different histories to two
replicas is convicted as soon as one pulls from the other.

Proofs travel: `import_proof` verifies and stores one received from elsewhere; `equivocations`
lists them (``unreported`` for the transport to gossip, `mark_reported` afterwards); and
`slash_equivocators` hands every unslashed proof that convicts one of this node's staked agents
to the market's equivocation slash (`colony.market.stakes.slash_for_equivocation`), once.

Reputation evidence — the market's signed verification (7204) and feedback (7205) events — is
pulled by cursor with `sync_reputation`; each event is verified (`colony.market.events.open_market`)
before it is kept. Whether a feedback counts (a settled payment behind it) stays the reputation
book's decision (`colony.market.reputation`).

May import `colony.identity`, `colony.ledger`, `colony.market` (events, stakes), `colony.store`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Literal

import apsw
from pydantic import BaseModel, ConfigDict

from colony.errors import StoreError
from colony.federation import _replica_store as rs
from colony.federation.replica_sources import LedgerSource, replica_tree, tree_root
from colony.federation.replica_verify import parse_page, verify_batch
from colony.federation.replica_wire import MAX_PAGE, ProofRejectedError, SourceError
from colony.identity.events import KINDS, Event
from colony.ledger import merkle
from colony.ledger.proofs import EquivocationProof, verify_equivocation
from colony.ledger.records import Entry, Problem, SignedMint, SignedTransfer, VerifyReport
from colony.ledger.verify import Feed, verify_feed
from colony.market.events import MARKET_KINDS, FeedbackBody, MarketEventError, VerificationBody, open_market
from colony.market.stakes import NodeLike, keyring_of, slash_for_equivocation
from colony.store import Database, Row

__all__ = [
    "ReputationSyncResult",
    "SlashRecord",
    "StoredProof",
    "SyncResult",
    "equivocations",
    "import_proof",
    "mark_reported",
    "proof_id",
    "slash_equivocators",
    "sync",
    "sync_reputation",
    "verify_replica",
]

#: Entries (or reputation events) asked for per request.
PAGE = 500
#: A sync scans everything again instead of diffing when the source holds more than this share of its
#: entries beyond the replica's count (module docstring, step 2; docs/benchmarks.md has the costs).
RESCAN_SHARE = 1 / 16


class SyncResult(BaseModel):
    """What one sync with one origin did and cost."""

    model_config = ConfigDict(frozen=True)

    origin: str
    #: unchanged: the roots were equal; scan: a first pull of everything; diff: a Merkle walk;
    #: rescan: everything pulled again after a long partition, only what is new stored.
    mode: Literal["unchanged", "scan", "diff", "rescan", "failed"]
    requests: int
    bytes: int
    seconds: float
    remote_root: str | None
    root_before: str
    root_after: str
    accounts_differing: int
    accounts_synced: int
    entries_added: int
    proofs: list[EquivocationProof] = []
    problems: list[Problem] = []

    @property
    def in_sync(self) -> bool:
        return self.remote_root == self.root_after


class ReputationSyncResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    origin: str
    requests: int
    bytes: int
    received: int
    added: int
    cursor: int
    problems: list[Problem] = []


class StoredProof(BaseModel):
    """An equivocation proof as this node keeps it."""

    model_config = ConfigDict(frozen=True)

    id: str
    signer: str
    account: str
    seq: int
    proof: EquivocationProof
    found_by: Literal["sync", "import"]
    found_at: float
    reported_at: float | None
    slashed_at: float | None
    slashed: int | None


class SlashRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    proof_id: str
    agent: str
    amount: int


def _problem(account: str, seq: int, code: str, message: str, entry_id: str | None = None) -> Problem:
    return Problem(account=account, seq=seq, entry_id=entry_id, code=code, message=message)


class _Run:
    """One sync's state: the source, what it cost, what was stored and found (a run is state)."""

    def __init__(self, db: Database, origin: str, source: LedgerSource, page: int, clock: Callable[[], float],
                 threads: int | None) -> None:
        self.db, self.origin, self.source, self.page, self.clock, self.threads = db, origin, source, page, clock, threads
        self.differing = self.synced = self.added = 0
        self.proofs: list[EquivocationProof] = []
        self.problems: list[Problem] = []

    # -- finding what differs -----------------------------------------------------------------
    def scan(self, announced: int) -> None:
        """Every entry in (account, seq) order, each account settled as it completes (`settle`).

        ``announced`` is the source's entry count: a source that keeps sending far more than it said
        it holds is cut off rather than followed for ever.
        """
        ceiling, pulled = 2 * announced + self.page, 0
        heads = rs.heads(self.db, self.origin)
        seen: set[str] = set()
        cursor: tuple[str, int] = ("", 0)
        account: str | None = None
        entries: list[Entry] = []
        events: dict[str, Event] = {}
        while True:
            page = self.source.scan(cursor[0], cursor[1], self.page)
            found, cited, bad = parse_page(page)
            if bad:
                self.problems += bad
                return  # the account the bad line belongs to is unknown: stop, keep what completed
            pulled += len(found)
            if pulled > ceiling:
                self.problems.append(_problem("", 0, "oversized", f"the source announced {announced} entries and "
                                              f"sent more than {ceiling}; stopped"))
                return
            for e in found:
                key = (e.body.account, e.body.seq)
                if key <= cursor:
                    self.problems.append(_problem(e.body.account, e.body.seq, "unordered", "the source's scan went "
                                                  "backwards; stopped", e.id))
                    return
                cursor = key
                if e.body.account != account:
                    if account is not None:
                        self.settle(account, heads.get(account), entries, events)
                    account, entries, events = e.body.account, [], {}
                    seen.add(account)
                entries.append(e)
                if e.body.ref in cited:
                    events[e.body.ref] = cited[e.body.ref]
            if not page.more or not found:
                break
        if account is not None:
            self.settle(account, heads.get(account), entries, events)
        for lost in sorted(set(heads) - seen):  # accounts this replica holds that the source no longer serves
            self.differing += 1
            self.walk(lost, heads[lost][0])

    def settle(self, account: str, head: rs.Head | None, entries: list[Entry], events: dict[str, Event]) -> None:
        """One account's scanned entries: all of them when the replica has none, else what follows its head."""
        at_head = None if head is None else next((e for e in entries if e.body.seq == head[0]), None)
        new = entries if head is None else [e for e in entries if e.body.seq > head[0]]
        if head is not None and at_head is not None and at_head.id == head[1] and not new:
            return  # the same chain, nothing after it
        self.differing += 1
        if head is None:
            self.accept(account, None, entries, events)
            return
        if at_head is None:
            self.walk(account, head[0])  # the source holds fewer entries than this replica: a rollback
            return
        if at_head.id != head[1]:
            ours = rs.entry_at(self.db, self.origin, account, head[0])
            if ours is not None:
                self.convict(account, ours, at_head)
            return
        refs = {e.body.ref for e in new}
        self.accept(account, head, new, {k: v for k, v in events.items() if k in refs})

    def diff(self, tree: dict[str, tuple[str, dict[str, str]]], remote_root: str) -> None:
        """Walk the trees where they differ, then pull each differing account."""

        def local(prefix: str) -> dict[str, str]:
            return tree.get(prefix, ("", {}))[1]

        try:
            found = merkle.diff(local, self.source.children, remote_root=remote_root)
        except ValueError:
            try:  # the origin may have moved on since it announced its root: walk its tree as it is now
                found = merkle.diff(local, self.source.children)
            except ValueError as exc:
                self.problems.append(_problem("", 0, "inconsistent_tree", f"the source's state tree does not hash "
                                              f"up to what it announced ({exc}); nothing was pulled"))
                return
        self.differing = len(found.accounts)
        heads = rs.heads(self.db, self.origin)
        for account in found.accounts:
            self.pull(account, heads.get(account))

    # -- one account ----------------------------------------------------------------------------
    def pull(self, account: str, head: rs.Head | None) -> None:
        after = head[0] if head else 0
        page = self.source.entries(account, after, self.page)
        entries, events, bad = parse_page(page, account)
        if bad:
            self.problems += bad
            return
        if not entries:
            if head is None:
                self.problems.append(_problem(account, 0, "missing_entries", "the source's tree lists this account "
                                              "but it serves no entries for it"))
            else:
                self.fork(account, head, [])
            return
        first = entries[0].body
        if head is not None and (first.seq <= after or (first.seq == after + 1 and first.prev != head[1])):
            self.fork(account, head, entries)
            return
        while page.more:
            page = self.source.entries(account, entries[-1].body.seq, self.page)
            more, cited, bad = parse_page(page, account)
            if bad or not more:
                self.problems += bad or [_problem(account, entries[-1].body.seq, "truncated", "the source said "
                                                  "more entries follow, then sent none")]
                return
            entries += more
            events.update(cited)
        self.accept(account, head, entries, events)

    def accept(self, account: str, head: rs.Head | None, entries: list[Entry], events: dict[str, Event]) -> None:
        cited, problems = verify_batch(self.origin, account, head, entries, events, threads=self.threads)
        if problems:
            self.problems += problems
            return
        try:
            stored = rs.append_account(self.db, self.origin, account, head[0] if head else 0, entries, cited)
        except (apsw.Error, StoreError) as exc:
            self.problems.append(_problem(account, 0, "store_refused", f"the replica refused the entries: {exc}"))
            return
        if not stored:
            self.problems.append(_problem(account, 0, "head_moved", "another sync stored entries for this account "
                                          "first; nothing was written"))
            return
        self.synced += 1
        self.added += len(entries)

    def fork(self, account: str, head: rs.Head, theirs: list[Entry]) -> None:
        """The source's chain does not extend ours: find the entry where the two differ, and convict."""
        held = head[0]
        candidates = [e for e in theirs if e.body.seq <= held]
        if not candidates:  # ask for their entry at our head's seq
            at_head, _, bad = parse_page(self.source.entries(account, held - 1, 1), account)
            if bad:
                self.problems += bad
                return
            candidates = [e for e in at_head if e.body.seq == held]
        if not candidates:
            self.walk(account, held)
            return
        for e in candidates:
            ours = rs.entry_at(self.db, self.origin, account, e.body.seq)
            if ours is not None and ours.id != e.id:
                self.convict(account, ours, e)
                return
        code, why = (("broken_link", f"#{held + 1} does not link to #{held}, which both sides hold alike") if theirs
                     else ("stale_tree", "the source's tree says this account differs, but it serves the same head"))
        self.problems.append(_problem(account, held + 1 if theirs else held, code, why))

    def walk(self, account: str, held: int) -> None:
        """The source holds fewer entries than we do: compare its chain with ours from the start."""
        after = 0
        while after < held:
            entries, _, bad = parse_page(self.source.entries(account, after, self.page), account)
            if bad:
                self.problems += bad
                return
            for e in entries:
                if e.body.seq > held:
                    break
                ours = rs.entry_at(self.db, self.origin, account, e.body.seq)
                if ours is not None and ours.id != e.id:
                    self.convict(account, ours, e)
                    return
            if not entries or entries[-1].body.seq <= after:
                break
            after = entries[-1].body.seq
        self.problems.append(_problem(account, after, "rolled_back", f"the source serves {after} of the {held} "
                                      "entries this replica holds for the account (a prefix of them): a rollback, "
                                      "not provable as equivocation"))

    def convict(self, account: str, ours: Entry, theirs: Entry) -> None:
        proof = EquivocationProof(first=ours.event(), second=theirs.event())
        if proof.signer != self.origin or not verify_equivocation(proof):
            self.problems.append(_problem(account, theirs.body.seq, "bad_entry", f"the source's #{theirs.body.seq} "
                                          "differs from ours but is not a valid entry by the origin", theirs.id))
            return
        _store_proof(self.db, proof, "sync", self.clock())
        self.proofs.append(proof)


def sync(db: Database, origin: str, source: LedgerSource, *, page: int = PAGE, clock: Callable[[], float] = time.time,
         threads: int | None = None) -> SyncResult:
    """Bring this replica of ``origin`` up to ``source`` (see the module docstring); never raises for what
    the source does wrong — that is in the result's ``problems``."""
    started = time.perf_counter()
    requests, transferred = source.meter.requests, source.meter.transferred
    run = _Run(db, origin, source, max(1, min(MAX_PAGE, page)), clock, threads)
    tree = replica_tree(db, origin)
    before = after = tree_root(tree)
    remote: str | None = None
    mode: Literal["unchanged", "scan", "diff", "rescan", "failed"] = "unchanged"
    try:
        info = source.root()
        remote = info.root
        if remote != before:
            if tree and info.entries - rs.entry_count(db, origin) > RESCAN_SHARE * info.entries:
                mode = "rescan"
                run.scan(info.entries)
            elif tree:
                mode = "diff"
                run.diff(tree, remote)
            else:
                mode = "scan"
                run.scan(info.entries)
    except SourceError as exc:
        mode = "failed" if remote is None else mode
        run.problems.append(_problem("", 0, "source_error", str(exc)))
    if run.added:
        after = tree_root(replica_tree(db, origin))
    result = SyncResult(origin=origin, mode=mode, requests=source.meter.requests - requests,
                        bytes=source.meter.transferred - transferred, seconds=time.perf_counter() - started,
                        remote_root=remote, root_before=before, root_after=after, accounts_differing=run.differing,
                        accounts_synced=run.synced, entries_added=run.added, proofs=run.proofs, problems=run.problems)
    rs.record_sync(db, origin, remote_root=remote, local_root=after, requests=result.requests,
                   transferred=result.bytes, entries=run.added, problems=len(run.problems), at=clock())
    return result


def verify_replica(db: Database, origin: str, *, threads: int | None = None) -> VerifyReport:
    """The ledger's full verifier over this replica of ``origin`` (pairing and supply included)."""
    entries = rs.scan_after(db, origin, "", 0, 2**62)
    events = rs.cited_events(db, origin, {e.body.ref for e in entries})
    feed = Feed(entries=entries, transfers=[(SignedTransfer.from_event(e), None, None) for e in events
                                            if e.kind == KINDS["transfer"]],
                mints=[SignedMint.from_event(e) for e in events if e.kind == KINDS["treasury"]])
    return verify_feed(feed, threads=threads)


# -- reputation ---------------------------------------------------------------------------------
def _subject(event: Event) -> str:
    """The key a reputation event is about (verified); MarketEventError when it is not one."""
    if event.kind == MARKET_KINDS["verification"]:
        return open_market(event, VerificationBody).worker
    if event.kind == MARKET_KINDS["feedback"]:
        return open_market(event, FeedbackBody).ratee
    raise MarketEventError("wrong_kind", f"event {event.id[:12]}… is kind {event.kind}, not verification or feedback")


def sync_reputation(db: Database, origin: str, source: LedgerSource, *, page: int = PAGE) -> ReputationSyncResult:
    """Pull ``origin``'s reputation events after the stored cursor; keep those that verify."""
    requests, transferred = source.meter.requests, source.meter.transferred
    row = rs.origin_row(db, origin)
    cursor = int(row["reputation_cursor"]) if row else 0
    received = added = 0
    problems: list[Problem] = []
    while True:
        try:
            answer = source.reputation_events(cursor, page)
        except SourceError as exc:
            problems.append(_problem("", 0, "source_error", str(exc)))
            break
        keep: list[tuple[int, Event, str]] = []
        moved = cursor
        for item in answer.events:
            if item.cursor <= moved:
                problems.append(_problem("", item.cursor, "unordered", "the source's cursor went backwards; stopped"))
                answer = answer.model_copy(update={"more": False})
                break
            moved = item.cursor
            received += 1
            try:
                keep.append((item.cursor, item.event, _subject(item.event)))
            except MarketEventError as exc:  # refused and skipped: the same bytes would be refused again
                problems.append(_problem("", item.cursor, exc.reason, str(exc), item.event.id))
        added += rs.insert_reputation(db, origin, keep, moved)
        cursor = moved
        if not answer.more or not answer.events:
            break
    return ReputationSyncResult(origin=origin, requests=source.meter.requests - requests,
                                bytes=source.meter.transferred - transferred, received=received, added=added,
                                cursor=cursor, problems=problems)


# -- equivocation proofs --------------------------------------------------------------------------
def proof_id(proof: EquivocationProof) -> str:
    """The proof's key, whatever the order of its events: also the market's slash reference."""
    first, second = sorted((proof.first.id, proof.second.id))
    return hashlib.sha256(bytes.fromhex(first + second)).hexdigest()


def _store_proof(db: Database, proof: EquivocationProof, found_by: Literal["sync", "import"], at: float) -> bool:
    body = Entry.from_event(proof.first).body
    stored = rs.insert_proof(db, {"id": proof_id(proof), "signer": proof.signer, "account": body.account,
                                  "seq": body.seq, "first": proof.first.model_dump_json(),
                                  "second": proof.second.model_dump_json(), "found_by": found_by, "found_at": at})
    rs.mark_convicted(db, proof.signer, at)
    return stored


def import_proof(db: Database, proof: EquivocationProof, *, clock: Callable[[], float] = time.time) -> bool:
    """Verify a proof received from anywhere and keep it; True when it was new here.

    Raises `ProofRejectedError` when the two events do not convict their signer.
    """
    if not verify_equivocation(proof):
        raise ProofRejectedError("The equivocation proof does not verify: two different ledger entries for one "
                                 "(account, seq), both validly signed by one key, are needed.")
    return _store_proof(db, proof, "import", clock())


def _stored(row: Row) -> StoredProof:
    proof = EquivocationProof(first=Event.model_validate_json(row["first"]),
                              second=Event.model_validate_json(row["second"]))
    return StoredProof(id=row["id"], signer=row["signer"], account=row["account"], seq=row["seq"], proof=proof,
                       found_by=row["found_by"], found_at=row["found_at"], reported_at=row["reported_at"],
                       slashed_at=row["slashed_at"], slashed=row["slashed"])


def equivocations(db: Database, *, signer: str | None = None, unreported: bool = False) -> list[StoredProof]:
    """The proofs this node holds (``unreported``: those not yet passed on to peers)."""
    return [_stored(r) for r in rs.proofs(db, signer=signer, unreported=unreported)]


def mark_reported(db: Database, ids: list[str], *, clock: Callable[[], float] = time.time) -> int:
    """Record that these proofs were passed on to the peers; returns how many were not marked before."""
    return rs.mark_reported(db, ids, clock())


def slash_equivocators(node: NodeLike, db: Database | None = None, *, actor: str = "federation",
                       clock: Callable[[], float] = time.time) -> list[SlashRecord]:
    """Slash, through the market, every agent of this node that a stored, unslashed proof convicts.

    ``db`` holds the proofs (the node's database by default). Proofs convicting keys this node does
    not host are left for the node that does (they reach it by `import_proof`). Exactly once: the
    market's slash is idempotent by the proof's reference, and the proof is marked slashed after
    it, so a crash in between slashes nothing twice on the next call.
    """
    keyring = keyring_of(node)
    db = db if db is not None else keyring.db
    done: list[SlashRecord] = []
    for row in rs.proofs(db, unslashed=True):
        ident = keyring.by_public_key(row["signer"])
        if ident is None or ident.role != "agent":
            continue
        stored = _stored(row)
        amount = slash_for_equivocation(keyring, stored.proof, actor=actor)
        if rs.mark_slashed(db, stored.id, amount, clock()):
            done.append(SlashRecord(proof_id=stored.id, agent=ident.name, amount=amount))
    return done
