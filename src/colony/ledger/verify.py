"""`colony ledger verify`: recompute everything, trust nothing that can be recomputed.

The same verifier runs on the node's database and on an exported feed (JSON lines of events,
what a replica pulls). It checks, in order of how close a problem is to its cause:

0. every entry: its hash (the event id) recomputed from its fields, its signature by its signer;
1. the authorisation each entry cites: the payer's transfer (id recomputed, signature by the
   payer, window ≤ 300 s, the entry made inside that window) or the node's treasury order, and
   that the entry agrees with it (amount, parties, nonce);
2. each account's chain: seq 1, 2, 3… with no gap, ``prev`` = the previous entry's hash, one
   signer (the home node), each balance = the previous balance ± the amount and never negative;
3. pairing: an applied transfer is exactly one debit and one matching credit, a hold is one hold
   entry then at most one capture (with the payee's credit) or release, a mint is one mint
   entry; refused nonces moved nothing; and the supply — what the treasury minted — equals the
   balances plus what is held (checked when the feed is closed: every counterparty present);
4. (database only) the caches: balances, heads, held totals, hold states, the supply counter
   and the Merkle root, each recomputed from the journal.

The report lists every problem, the first one — the lowest level, then account and seq — first:
that is the entry to look at (a changed amount breaks that entry's hash, not the balances after
it). Signatures are checked in one batch, on several threads when there are many.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from colony.identity.events import KINDS, event_id
from colony.ledger import merkle
from colony.ledger._sigs import BAD_HASH, BAD_SIGNATURE, verify_entries, verify_signatures
from colony.ledger.records import (
    AccountView,
    Entry,
    HoldView,
    Problem,
    SignedMint,
    SignedTransfer,
    VerifyReport,
)
from colony.ledger.wire import DELTA, GENESIS, MAX_WINDOW_S

__all__ = ["Caches", "Feed", "verify_feed"]

_K_ENTRY, _K_TRANSFER, _K_MINT = KINDS["ledger_entry"], KINDS["transfer"], KINDS["treasury"]


@dataclass
class Feed:
    """What is verified: entries and the signed authorisations they cite."""

    entries: list[Entry] = field(default_factory=list)
    #: (authorisation, status, refusal reason); status is None in an exported feed.
    transfers: list[tuple[SignedTransfer, str | None, str | None]] = field(default_factory=list)
    mints: list[SignedMint] = field(default_factory=list)
    #: Lines of a file that could not be read as events (reported as problems).
    unreadable: list[Problem] = field(default_factory=list)


@dataclass
class Caches:
    """What the database stores beside the journal for speed; each must match the recomputation."""

    accounts: list[AccountView]
    holds: list[HoldView]
    supply: int
    root: str
    #: Every stored node of the state tree: prefix → (hash, children).
    tree: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[int, str, int, Problem]] = []

    def add(self, level: int, account: str, seq: int, entry_id: str | None, code: str, message: str) -> None:
        self.items.append((level, account, seq, Problem(account=account, seq=seq, entry_id=entry_id, code=code,
                                                        message=message)))

    def ordered(self) -> list[Problem]:
        return [p for *_, p in sorted(self.items, key=lambda t: (t[0], t[1], t[2]))]


def verify_feed(feed: Feed, caches: Caches | None = None, *, threads: int | None = None) -> VerifyReport:
    """Verify a feed (and, from a database, its caches). Never raises on bad data: it reports it."""
    started = time.perf_counter()
    out = _Problems()
    out.items.extend((0, p.account, p.seq, p) for p in feed.unreadable)
    # -- level 0 and 1: hashes, then every signature in one batch ---------------------------------
    entry_codes = verify_entries(feed.entries, threads=threads)
    items: list[tuple[str, str, str]] = []
    transfers: dict[str, tuple[SignedTransfer, str | None, str | None]] = {}
    auth_ok: dict[str, str | None] = {}  # id -> None when valid, else why not
    for st, status, reason in feed.transfers:
        a = st.auth
        recomputed = event_id(a.payer, st.created_at, _K_TRANSFER, [], a.content())
        transfers[st.id] = (st, status, reason)
        auth_ok[st.id] = (None if recomputed == st.id else "its hash does not match its fields")
        if not 0 < a.valid_before - a.valid_after <= MAX_WINDOW_S:
            auth_ok[st.id] = auth_ok[st.id] or f"its validity window is not 1 to {MAX_WINDOW_S} s"
        if a.payee == a.payer:
            auth_ok[st.id] = auth_ok[st.id] or "it pays its own payer"
        items.append((a.payer, recomputed, st.sig))
    mints: dict[str, SignedMint] = {}
    for sm in feed.mints:
        recomputed = event_id(sm.signer, sm.created_at, _K_MINT, [], sm.order.content())
        mints[sm.id] = sm
        auth_ok[sm.id] = None if recomputed == sm.id else "its hash does not match its fields"
        items.append((sm.signer, recomputed, sm.sig))
    sig_ok = verify_signatures(items, threads=threads)
    for i, (st, _, _) in enumerate(feed.transfers):
        if not sig_ok[i] and auth_ok[st.id] is None:
            auth_ok[st.id] = "its signature by the payer does not verify"
    for i, sm in enumerate(feed.mints, start=len(feed.transfers)):
        if not sig_ok[i] and auth_ok[sm.id] is None:
            auth_ok[sm.id] = "its signature by the node does not verify"

    by_ref: dict[str, list[Entry]] = defaultdict(list)
    chains: dict[str, list[Entry]] = defaultdict(list)
    for i, e in enumerate(feed.entries):
        b = e.body
        if entry_codes[i] == BAD_HASH:
            out.add(0, b.account, b.seq, e.id, "entry_hash", f"{b.account[:12]}… #{b.seq}: the entry's hash "
                    f"does not match its fields (a field was changed after it was signed)")
        elif entry_codes[i] == BAD_SIGNATURE:
            out.add(0, b.account, b.seq, e.id, "entry_signature",
                    f"{b.account[:12]}… #{b.seq}: the signature by {e.signer[:12]}… does not verify")
        by_ref[b.ref].append(e)
        chains[b.account].append(e)
        _check_authority(out, e, transfers, mints, auth_ok)

    # -- level 2: chains ------------------------------------------------------------------------
    heads: dict[str, Entry] = {}
    for account, chain in chains.items():
        chain.sort(key=lambda x: x.body.seq)
        heads[account] = chain[-1]
        _check_chain(out, account, chain)

    # -- level 3: pairing and supply -------------------------------------------------------------
    present = set(chains)
    closed = all(e.body.counterparty is None or e.body.counterparty in present for e in feed.entries)
    hold_states = _check_pairs(out, transfers, mints, by_ref, present)
    supply = sum(sm.order.amount for sm in mints.values())
    if closed:
        balances = sum(h.body.balance for h in heads.values())
        held = sum(amount for _, amount, state in hold_states.values() if state == "held")
        if balances + held != supply:
            out.add(3, "", 0, None, "supply", f"the treasury minted {supply} micro-credits but the accounts hold "
                    f"{balances} and holds {held}: {balances + held - supply:+d} unaccounted for")
    if caches is not None:
        _check_caches(out, caches, heads, hold_states, supply)
    problems = out.ordered()
    return VerifyReport(ok=not problems, entries=len(feed.entries), accounts=len(chains),
                        transfers=len(feed.transfers), mints=len(feed.mints), supply=supply, signatures=len(items) + len(feed.entries),
                        seconds=time.perf_counter() - started, problems=problems, partial=not closed)


def _check_authority(out: _Problems, e: Entry, transfers: dict[str, tuple[SignedTransfer, str | None, str | None]],
                     mints: dict[str, SignedMint], auth_ok: dict[str, str | None]) -> None:
    """Level 1: the entry cites a valid authorisation and agrees with it."""
    b = e.body
    where = f"{b.account[:12]}… #{b.seq}"
    if b.kind == "mint":
        sm = mints.get(b.ref)
        if sm is None:
            out.add(1, b.account, b.seq, e.id, "unknown_authorisation", f"{where}: mint without a treasury order")
            return
        if auth_ok[b.ref]:
            out.add(1, b.account, b.seq, e.id, "bad_authorisation", f"{where}: treasury order {b.ref[:12]}… "
                    f"is invalid: {auth_ok[b.ref]}")
        elif (sm.order.account, sm.order.amount, sm.order.nonce, sm.signer) != (b.account, b.amount, b.nonce, e.signer):
            out.add(1, b.account, b.seq, e.id, "mismatch", f"{where}: the mint does not match its treasury order")
        return
    found = transfers.get(b.ref)
    if found is None:
        out.add(1, b.account, b.seq, e.id, "unknown_authorisation", f"{where}: cites no known authorisation")
        return
    st, status, _ = found
    a = st.auth
    if auth_ok[b.ref]:
        out.add(1, b.account, b.seq, e.id, "bad_authorisation",
                f"{where}: authorisation {b.ref[:12]}… is invalid: {auth_ok[b.ref]}")
        return
    payer_side = {"debit": "transfer", "hold": "hold", "capture": "hold", "release": "hold"}
    if b.kind in payer_side:
        ok = a.op == payer_side[b.kind] and b.account == a.payer
        ok = ok and (b.kind != "debit" or b.counterparty == a.payee)
        ok = ok and (b.kind != "hold" or b.counterparty == a.payee)
        ok = ok and (b.kind != "capture" or a.payee is None or b.counterparty == a.payee)
        ok = ok and (b.kind != "release" or b.counterparty is None)
    else:  # a credit: from a transfer, or from a captured hold
        ok = b.counterparty == a.payer and (a.op == "hold" or b.account == a.payee)
    if not ok or b.amount != a.amount or b.nonce != a.nonce:
        out.add(1, b.account, b.seq, e.id, "mismatch", f"{where}: the {b.kind} does not match its authorisation "
                f"(amount, parties or nonce)")
    elif (b.kind in ("debit", "hold") or (b.kind == "credit" and a.op == "transfer")) and \
            not a.valid_after <= e.created_at < a.valid_before:
        # Captures and releases come later, by the node's decision; the rest applied with the payment.
        out.add(1, b.account, b.seq, e.id, "outside_window", f"{where}: applied outside its authorisation's "
                f"validity window")
    if status == "refused":
        out.add(3, b.account, b.seq, e.id, "refused_but_applied", f"{where}: cites a refused authorisation")


def _check_chain(out: _Problems, account: str, chain: list[Entry]) -> None:
    """Level 2: contiguous seq, links, one signer, balances that follow."""
    prev_id, balance, home = GENESIS, 0, chain[0].signer
    expected = 1
    for e in chain:
        b = e.body
        where = f"{account[:12]}… #{b.seq}"
        if b.seq != expected:
            out.add(2, account, b.seq, e.id, "seq_gap", f"{where}: expected #{expected} (entries missing or renumbered)")
        elif b.prev != prev_id:
            out.add(2, account, b.seq, e.id, "broken_link", f"{where}: prev is not the hash of #{b.seq - 1}")
        if e.signer != home:
            out.add(2, account, b.seq, e.id, "wrong_signer", f"{where}: signed by {e.signer[:12]}…, not the "
                    f"account's home node {home[:12]}…")
        balance += DELTA.get(b.kind, 0) * b.amount
        if b.balance != balance:
            out.add(2, account, b.seq, e.id, "bad_balance", f"{where}: balance {b.balance} but the journal gives "
                    f"{balance}")
            balance = b.balance  # report each wrong step once, not every entry after it
        if b.balance < 0:
            out.add(2, account, b.seq, e.id, "negative_balance", f"{where}: negative balance {b.balance}")
        prev_id, expected = e.id, b.seq + 1


def _check_pairs(out: _Problems, transfers: dict[str, tuple[SignedTransfer, str | None, str | None]],
                 mints: dict[str, SignedMint], by_ref: dict[str, list[Entry]],
                 present: set[str]) -> dict[str, tuple[str, int, str]]:
    """Level 3: each authorisation moved exactly what it should. Returns hold id -> (payer, amount, state)."""
    holds: dict[str, tuple[str, int, str]] = {}
    for ref, (st, status, _) in transfers.items():
        a, got = st.auth, by_ref.get(ref, [])
        kinds = sorted(e.body.kind for e in got)
        first = min(got, key=lambda e: (e.body.account, e.body.seq), default=None)
        if a.op == "transfer":
            want = [] if status == "refused" or (status is None and not got) else ["credit", "debit"]
            if a.payee not in present or a.payer not in present:
                want = [k for k in want if (k == "credit" and a.payee in present) or (k == "debit" and a.payer in present)]
        else:
            state = "held" if "hold" in kinds else "none"
            state = "captured" if "capture" in kinds else "released" if "release" in kinds else state
            if "hold" in kinds:
                holds[ref] = (a.payer, a.amount, state)
            want = {"none": [], "held": ["hold"], "released": ["hold", "release"],
                    "captured": ["capture", "credit", "hold"]}[state]
            payee = next((e.body.counterparty for e in got if e.body.kind == "capture"), None)
            if a.payer not in present or (state == "captured" and payee not in present):
                want = kinds  # a partial feed: the other side of this hold is not here to pair with
        if kinds != want and first is not None:
            out.add(3, first.body.account, first.body.seq, first.id, "unpaired",
                    f"authorisation {ref[:12]}… moved {kinds or 'nothing'}, expected {want or 'nothing'}")
        elif kinds != want:
            out.add(3, a.payer, 0, None, "unpaired", f"applied authorisation {ref[:12]}… has no entries")
    for ref, sm in mints.items():
        kinds = sorted(e.body.kind for e in by_ref.get(ref, []))
        if kinds != ["mint"] and (sm.order.account in present or kinds):
            out.add(3, sm.order.account, 0, None, "unpaired", f"treasury order {ref[:12]}… has {len(kinds)} mint "
                    "entries, expected 1")
    return holds


def _check_caches(out: _Problems, caches: Caches, heads: dict[str, Entry],
                  hold_states: dict[str, tuple[str, int, str]], supply: int) -> None:
    """Level 4: what the database keeps beside the journal agrees with the journal."""
    held_by: dict[str, int] = defaultdict(int)
    for payer, amount, state in hold_states.values():
        if state == "held":
            held_by[payer] += amount
    cached = {a.account: a for a in caches.accounts}
    leaves: dict[str, str] = {}
    for account, head in heads.items():
        b = head.body
        leaves[account] = merkle.leaf_hash(account, b.seq, head.id, b.balance)
        c = cached.get(account)
        if c is None:
            out.add(4, account, b.seq, head.id, "cache", f"{account[:12]}…: no balance row for an account with entries")
        elif (c.balance, c.seq, c.head, c.held, c.home) != (b.balance, b.seq, head.id, held_by[account], head.signer):
            out.add(4, account, b.seq, head.id, "cache", f"{account[:12]}…: the cached balance {c.balance} "
                    f"(seq {c.seq}, held {c.held}) disagrees with the journal: balance {b.balance} at #{b.seq}, held "
                    f"{held_by[account]}")
    for account in cached.keys() - heads.keys():
        out.add(4, account, 0, None, "cache", f"{account[:12]}…: a balance row without any journal entry")
    for hold in caches.holds:
        derived = hold_states.get(hold.id)
        if derived is None or derived[2] != hold.state or (derived[0], derived[1]) != (hold.payer, hold.amount):
            out.add(4, hold.payer, 0, None, "hold_state", f"hold {hold.id[:12]}… is recorded as {hold.state} but "
                    f"the journal says {derived[2] if derived else 'it does not exist'}")
    if caches.supply != supply:
        out.add(4, "", 0, None, "supply_counter", f"the supply counter says {caches.supply}, the treasury orders "
                f"add up to {supply}")
    tree = merkle.tree_of(leaves)
    if tree.get("", (merkle.EMPTY_ROOT, {}))[0] != caches.root:
        out.add(4, "", 0, None, "state_root", "the stored state root does not match the root recomputed from the "
                "journal's heads")
    stale = sorted(p for p in tree.keys() | caches.tree.keys() if tree.get(p) != caches.tree.get(p))
    if stale:
        out.add(4, "", 0, None, "state_tree", f"{len(stale)} stored node(s) of the state tree disagree with the "
                f"journal's heads, first at prefix {stale[0]!r}")
