"""The marketplace on one node: auctions posted, awarded, verified and paid — durably, exactly once.

Who holds what, when (all amounts integer micro-credits on the node's ledger):

1. **Post** — the poster (one of the node's agents; ``colony`` by default) signs an announcement;
   its task moves ``posted → bidding``. Nothing is held yet; the poster must have the reserve
   available, so an auction nobody could be paid for is not opened.
2. **Commit** — each bidder holds its bond from its own wallet (a ledger hold, no payee) and, for
   a bid above the stake-free size, locks the stake that backs it (`colony.market.stakes.lock`);
   the commitment names the bond's hold (``bond_ref``). Reveal opens it after the commit deadline.
3. **Award** (after the reveal deadline, one transaction) — `colony.market.auction.settle` over
   the stored events decides; the poster signs the award; the poster's **price** is held in
   escrow with the winner as the only possible payee; revealed bidders' bonds are released,
   unrevealed ones captured to the **treasury** (`stakes.treasury`), losers' stake locks
   released; the task moves ``bidding → assigned`` with the winner as its assignee. The price,
   not the reserve, is held: a hold is captured or released whole, so holding exactly what the
   auction decided pays the winner exactly that and refunds exactly that, with nothing of the
   poster's locked beyond what it owes. Forfeits go to the treasury, not the poster: a poster who
   profited from non-reveals would have a reason to provoke them.
4. **Work** — the winner runs the task as itself through the durable task machinery (leases,
   checkpoints, HITL; `colony.market.worker`).
5. **Verify and settle** (one transaction) — the verdict (the announcement's method) is signed by
   the verifier; pass: escrow captured to the winner; fail: escrow released to the poster and the
   winner's stake slashed by `stake.settle_verification` (`stakes.slash`, to the treasury). The
   poster's feedback (100 or 0) on the payment follows; the winner's stake lock is released.

Why it is exactly once: every step is one transaction in which the ledger's own writes, the
task's transition and the market's rows join, guarded by the auction's state (``open`` →
``awarded`` → ``paid``/``refunded``): a second worker waits for the first, finds the state
moved and does nothing; a process killed mid-step leaves nothing of it (the database rolls the
transaction back) and the next pass does it whole. Ledger nonces are derived from the auction
and the bidder, and the database allows one award and one verification event per auction, so
even a step retried outside those guards cannot move credits twice.

On either engine (`colony.store.engine`): the market's tables live where the ledger and the
task queue do — the node's SQLite file, or PostgreSQL with ``COLONY_DATABASE_URL`` — and a step
is `Engine.atomic`. On SQLite that is one ``BEGIN IMMEDIATE`` (the file's one write lock keeps
every other step out); on PostgreSQL one `colony.store.pg.PgDatabase.thread_tx` that the ledger
and task stores join, with the auction's named lock (`auction_lock`) taken first so two workers
on one auction serialise, and the whole step run again after a deadlock between steps that
touch the same wallets.

Many nodes, one database: with ``COLONY_DATABASE_URL`` shared by several nodes, every node's
worker lists every auction, but agent names are local to a node (each has a ``colony``) and each
agent's key is in its own node's file. So a node takes an auction's poster-side steps (award,
verification, settlement, cancel) only when the poster's **account** is one of its own agents'
keys (`Market.due`, `Market.awarded`; the steps refuse the others with ``conflict``), and finds
the signing key by that account, never by ``poster_name``. A task is awarded to the winner's
account (``tasks.assignee``), so only the node hosting the winner claims it
(`colony.market.worker.work_once`). The node's agents bid only in auctions its own agents posted
(`colony.market.bidders`): the poster's node settles the bonds, escrow and slashes of every
bidder, and a ledger account's chain is signed by its home node alone, so a bid from another
node could be neither released nor paid here.

Across nodes (federation, `colony.federation.remote_market`): a bid may also come from an agent of a
trusted member node, POSTed here and inserted like any other. Such a bidder's bond and stake are
held on its **home** ledger, so the award leaves them alone (the member closes them when it reads
the signed award); a winner from another node is named by the registered `RemoteBidders`, its
price held in escrow here as for anyone, and a passing verdict is recorded first and paid through
x402 by capturing that escrow, after which `close_paid` rates and closes the auction; a failing one
refunds here and the winner's home node slashes. An award whose remote winner never delivers is given up by
federation's result deadline (`abandon`: escrow back, auction ``cancelled``, task ``posted`` again).

On one node every agent has the same operator, so the mechanism's owner guards (a poster's own
keys bidding, node-mates rating each other) are not applied here: they need owners that differ,
which federation will bring (cards name a node). The poster and its node's bidders still cannot
be the same key, and a review's validator never bids in the auction it judges.

May import the market's modules, `colony.tasks`, `colony.ledger`, `colony.identity`,
`colony.store`, `colony.observability` and `colony.node`; never a surface.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from colony.errors import TaskNotFoundError
from colony.identity import DEFAULT_AGENT, Identity
from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.ledger import HoldNotFoundError, HoldView, Ledger, LedgerStore, open_ledger_store
from colony.market import _gov_store, contribution, stakes
from colony.market import _market_store as _store
from colony.market.auction import (
    announcement_event,
    award_event,
    read_announcement,
    recheck,
    settle,
)
from colony.market.events import MARKET_KINDS, Announcement, CommitBody, MarketError, open_market
from colony.market.governance import market_params
from colony.market.ledger_guard import market_ledger
from colony.market.profiles import AgentProfileError, get_agent
from colony.market.reputation import ReputationBook, feedback_event, read_feedback, replay
from colony.market.stake import MarketParams, settle_verification, verification_event
from colony.market.task_queue import AssignedTasks, market_tasks
from colony.market.verify_result import Verdict, VerifySpec, run_check
from colony.market.views import AuctionRequest, RecheckView
from colony.observability.metrics import (
    observe_market_auction,
    observe_market_bid,
    observe_market_escrow,
    observe_market_slash,
)
from colony.store import Row
from colony.store.engine import Engine, open_engine
from colony.tasks.models import Budget, Task, TaskSpec

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["AuctionError", "Market", "RemoteBidders", "auction_lock", "escrow_nonce", "lock_ref",
           "register_remote_bidders"]

AuctionReason = Literal["not_found", "ambiguous", "invalid", "conflict", "unfunded", "not_ready"]
ACTOR = "market"
_NONCE_DOMAIN = b"colony/market/nonce/v1\x00"
#: The announcement carries the goal; longer specifications belong in a workspace file it names.
MAX_GOAL_CHARS = 4000


class AuctionError(MarketError):
    """An auction request refused; ``reason`` is a stable code, the message says what to do.

    ``not_found`` · ``ambiguous`` (an id prefix naming several) · ``invalid`` (a value or a
    verification spec that cannot work) · ``conflict`` (the task or auction is not in a state that
    allows it) · ``unfunded`` (the poster cannot cover the reserve) · ``not_ready`` (too early).
    """

    def __init__(self, reason: AuctionReason, message: str) -> None:
        self.reason: AuctionReason = reason
        self.code = reason
        super().__init__(message)


def escrow_nonce(kind: str, *parts: str) -> str:
    """A ledger nonce fixed by what the move is for: a retry is the same payment, never a second."""
    return hashlib.sha256(_NONCE_DOMAIN + "\x00".join((kind, *parts)).encode()).hexdigest()


def lock_ref(auction: str, bidder: str) -> str:
    """The stake lock a bid holds (released when it loses or its task is settled)."""
    return f"market:{auction}:{bidder}"


def auction_lock(auction: str) -> str:
    """The name a step locks to change the auction (`colony.store.engine.Engine.lock`)."""
    return f"market:auction:{auction}"


#: ``lookup(market, auction, account)``: the name of a bidder that bid in ``auction`` from another
#: node, or None when ``account`` did not. Federation registers one (`colony.federation.remote_market`),
#: so the market never imports it; with none registered, only this node's agents can win.
RemoteBidders = Callable[["Market", str, str], "str | None"]
_remote_bidders: list[RemoteBidders] = []


def register_remote_bidders(lookup: RemoteBidders) -> None:
    """Let bidders from other nodes win this node's auctions (once per lookup; see `RemoteBidders`)."""
    if lookup not in _remote_bidders:
        _remote_bidders.append(lookup)


@dataclass
class _Emitted:
    """Metrics to count once the transaction that earned them has committed."""

    auctions: list[str] = field(default_factory=list)
    bids: dict[str, int] = field(default_factory=dict)
    escrow: list[tuple[str, int]] = field(default_factory=list)
    slashed: list[int] = field(default_factory=list)

    def emit(self) -> None:
        for event in self.auctions:
            observe_market_auction(event)
        for phase, count in self.bids.items():
            observe_market_bid(phase, count)
        for outcome, amount in self.escrow:
            observe_market_escrow(outcome, amount)
        for amount in self.slashed:
            observe_market_slash(amount)


class Market:
    """The node's market: the state-changing steps of an auction, each one transaction.

    ``clock`` gives the market's time (deadlines, event times; Unix seconds), injectable so tests
    move through the phases without sleeping. Ledger authorisations keep the real clock: their
    validity windows are checked against it.
    """

    def __init__(self, node: Node, *, clock: Callable[[], float] = time.time, params: MarketParams | None = None) -> None:
        self.node = node
        #: The market's tables: in the node's file, or on PostgreSQL with the ledger and the tasks.
        self.db: Engine = open_engine(node.db, node.settings)
        self.clock = clock
        self._params = params

    # -- wiring -------------------------------------------------------------------------------
    @property
    def params(self) -> MarketParams:
        """The market's parameters: as given, else the defaults with governance's overrides."""
        return self._params if self._params is not None else market_params(_gov_store.param_overrides(self.db))

    @cached_property
    def ledger_store(self) -> LedgerStore:
        """The node's ledger, for reads (on PostgreSQL when the node has a database URL)."""
        return open_ledger_store(self.node.db, self.node.settings)

    @cached_property
    def ledger(self) -> Ledger:
        """The ledger the market's steps move credits on: the one beside its tables (`colony.market.ledger_guard`)."""
        return market_ledger(self.ledger_store, self.db, self.node.keyring.node().schnorr_key)

    @cached_property
    def tasks(self) -> AssignedTasks:
        """The node's task queue (`colony.market.task_queue`), in the same database as the market's tables."""
        return market_tasks(self.node)

    def now(self) -> int:
        return int(self.clock())

    # -- whose steps --------------------------------------------------------------------------
    def own_accounts(self) -> frozenset[str]:
        """The accounts of this node's agents: the auctions they posted are this node's to run."""
        return frozenset(i.public_hex for i in self.node.keyring.all() if i.role == "agent")

    def _own(self, account: str, what: str) -> Identity:
        """This node's agent whose account is ``account``; ``conflict`` when another node hosts it.

        By account, never by a recorded name: another node sharing the database may have an agent
        of that name, and signing with its key would be a wrong signature (module docstring).
        """
        found = self.node.keyring.by_public_key(account)
        if found is None or found.role != "agent":
            raise AuctionError("conflict", f"The {what} {account[:12]}… is not an agent of this node; the node that "
                                           "hosts it takes this step.")
        return found

    def is_local(self, account: str) -> bool:
        """Whether ``account`` is one of this node's agents (else a bidder from another node)."""
        found = self.node.keyring.by_public_key(account)
        return found is not None and found.role == "agent"

    def remote_bidder(self, auction: str, account: str) -> str | None:
        """The name of a bidder that bid in ``auction`` from another node (`RemoteBidders`), or None."""
        return next((name for lookup in _remote_bidders if (name := lookup(self, auction, account))), None)

    def _poster_key(self, row: Row) -> SchnorrKey:
        """The key of the auction's poster, which must be one of this node's agents (module docstring)."""
        return self.node.keyring.schnorr_key(self._own(row["poster"], f"poster of auction {row['id'][:12]}…").name)

    # -- reading ------------------------------------------------------------------------------
    def row(self, auction: str) -> Row:
        row = _store.get_auction(self.db, auction)
        if row is None:
            raise AuctionError("not_found", f"No auction {auction[:16]}… on this node; list them with: "
                                            "colony market auctions")
        return row

    def resolve(self, ref: str) -> str:
        """An auction id from itself or a unique prefix of at least 6 hex characters."""
        ref = ref.strip().lower()
        if len(ref) < 6 or any(c not in "0123456789abcdef" for c in ref):
            raise AuctionError("not_found", f"{ref!r} is not an auction id: give its hex id or a prefix of 6 or more "
                                            "characters (colony market auctions lists them).")
        found = _store.find_auctions(self.db, ref)
        if not found:
            raise AuctionError("not_found", f"No auction starts with {ref}; list them with: colony market auctions")
        if len(found) > 1:
            raise AuctionError("ambiguous", f"Several auctions start with {ref}; give more of the id.")
        return found[0]

    def posted(self, states: list[str]) -> list[Row]:
        """Auctions this node's agents posted, in ``states``, newest first."""
        return _store.list_auctions(self.db, states=states, posters=self.own_accounts(), limit=1000)

    def verification(self, auction: str) -> Row | None:
        """The auction's recorded verdict, or None before it is decided."""
        return _store.verification(self.db, auction)

    def by_escrow(self, hold_id: str) -> Row | None:
        """The auction whose price the escrow ``hold_id`` holds, or None."""
        return _store.auction_by_escrow(self.db, hold_id)

    def take_bid(self, event: Event, auction: str, also: Callable[[], None] | None = None) -> bool:
        """Insert a commit or reveal ``event`` (verified by the caller) that arrived from another node.

        Like a local bid, its arrival time here is what counts and the database refuses a late,
        early or second one (`MarketEventError`: ``late_commit``, ``early_reveal``, ``late_reveal``,
        ``duplicate``). False when this very event was taken before (a retry). ``also`` runs in the
        same step (on the node's file: the same transaction), for the caller's own record of it.
        """
        def step() -> bool:
            self.db.lock(auction_lock(auction))
            if any(e.id == event.id for e, _ in _store.auction_events(self.db, auction, [event.kind])):
                return False
            _store.insert_event(self.db, event, auction, self.now())
            if also is not None:
                also()
            return True

        taken = self.db.atomic(step)
        if taken:
            observe_market_bid("commit" if event.kind == MARKET_KINDS["commit"] else "reveal")
        return taken

    def terms(self, auction: str) -> Announcement:
        [(event, _)] = _store.auction_events(self.db, auction, [MARKET_KINDS["announcement"]])
        return read_announcement(event)

    def events(self, auction: str) -> list[tuple[Event, int]]:
        return _store.auction_events(self.db, auction)

    def hold(self, hold_id: str | None) -> HoldView | None:
        if not hold_id:
            return None
        try:
            return self.ledger_store.hold(hold_id)
        except HoldNotFoundError:
            return None

    def recheck(self, auction: str) -> RecheckView:
        """Recompute winner and price from the stored, signed events — anyone's audit of the award."""
        self.row(auction)
        kinds = [MARKET_KINDS[k] for k in ("announcement", "commit", "reveal", "award")]
        result = recheck([e for e, _ in _store.auction_events(self.db, auction, kinds)])
        outcome = result.outcome
        return RecheckView(auction=auction, ok=result.ok, winner=outcome.winner if outcome else None,
                           price=outcome.price if outcome else None, problems=list(result.problems))

    # -- reputation ---------------------------------------------------------------------------
    def is_settled(self, payment_ref: str, rater: str, ratee: str) -> bool:
        """The ledger shows the escrow ``payment_ref`` from ``rater`` for ``ratee``, settled by verification.

        Settled means captured to the ratee (the work passed) or released to the rater (it failed):
        both are the outcome of a real, signed payment between the two, which is what anchors the
        rating. An escrow still held, or a hold between other parties, backs nothing.
        """
        hold = self.hold(payment_ref)
        return (hold is not None and hold.payer == rater and hold.payee == ratee
                and (hold.state == "released" or hold.captured_to == ratee))

    def reputation_book(self) -> ReputationBook:
        """Every stored feedback replayed through the beta book (forgetting, payment-backed only)."""
        return replay([read_feedback(e) for e in _store.all_feedback(self.db)], is_settled=self.is_settled)

    def reputation(self, account: str) -> float:
        return self.reputation_book().expectation(account)

    # -- posting ------------------------------------------------------------------------------
    def post(self, req: AuctionRequest) -> str:
        """Open an auction for a task; returns its id. See the module docstring, step 1."""
        settings = self.node.settings
        spec = self._spec(req)
        poster = self._agent(req.poster, "poster")
        verifier = self._verifier(req, spec, poster)
        key = poster.schnorr_key  # unlocked (scrypt) before the write lock is taken
        bond = settings.market_bond if req.bond is None else req.bond
        commit_s = req.commit_s or settings.market_commit_s
        reveal_s = req.reveal_s or settings.market_reveal_s

        def step() -> str:
            task = self._task_to_auction(req, poster)
            reserve = req.reserve if req.reserve is not None else task.budget.credits
            if not reserve:
                raise AuctionError("invalid", f"Task {task.id} has no credit budget: give a reserve (--reserve N "
                                              "micro-credits) or post the task with --credits N.")
            if len(task.goal) > MAX_GOAL_CHARS:
                raise AuctionError("invalid", f"The task's goal is {len(task.goal)} characters; an announcement holds "
                                              f"{MAX_GOAL_CHARS}. Put the details in a workspace file the goal names.")
            available = self.ledger.balance(poster.public_hex).balance
            if available < reserve:
                raise AuctionError("unfunded", f"{poster.name} has {available} micro-credits available; the reserve "
                                               f"is {reserve}. Fund its wallet or lower the reserve.")
            now = self.now()
            terms = Announcement(poster=poster.public_hex, goal=task.goal, skills=tuple(sorted(task.skills)),
                                 reserve=reserve, commit_deadline=now + commit_s,
                                 reveal_deadline=now + commit_s + reveal_s, bond=bond, verification=req.verification,
                                 rule=req.rule, nonce=secrets.token_hex(32))
            event = announcement_event(key, terms, created_at=now)
            auction = terms.auction_id
            _store.insert_event(self.db, event, auction, now)
            _store.insert_auction(self.db, {
                "id": auction, "task_id": task.id, "announcement": event.id, "poster": poster.public_hex,
                "poster_name": poster.name, "rule": terms.rule, "reserve": reserve, "bond": bond,
                "commit_deadline": terms.commit_deadline, "reveal_deadline": terms.reveal_deadline,
                "verification": terms.verification, "verify_spec": spec.model_dump(exclude_none=True),
                "verifier": verifier})
            self.tasks.transition(task.id, "bidding", actor=ACTOR, reason=f"auction {auction[:12]}… opened",
                                  data={"auction": auction}, expect=("posted",))
            return auction

        auction = self.db.atomic(step)
        _Emitted(auctions=["posted"]).emit()
        return auction

    def _spec(self, req: AuctionRequest) -> VerifySpec:
        if (req.task_id is None) == (req.goal is None):
            raise AuctionError("invalid", "Give either task_id (a posted task) or goal (a new task), not both.")
        if req.task_id is not None and req.skills:
            raise AuctionError("invalid", "Skills belong to the task: an existing task keeps its own.")
        try:
            return req.verify_spec().check(req.verification)
        except MarketError as exc:
            raise AuctionError("invalid", str(exc)) from exc

    def _agent(self, name: str, role: str) -> Identity:
        try:
            record = get_agent(self.node.keyring, name)
        except AgentProfileError as exc:
            raise AuctionError("not_found", f"The {role} {name!r} is not an agent of this node; list them with: "
                                            "colony agents list") from exc
        if not record.active and name != DEFAULT_AGENT:
            raise AuctionError("invalid", f"The {role} {name!r} is deactivated.")
        return self.node.keyring.agent(name)

    def _verifier(self, req: AuctionRequest, spec: VerifySpec, poster: Identity) -> str:
        """Who signs the verdict: the reviewing agent for ``review``, else the node (it runs the tests
        and records a person's decision) — never the poster, who gets its money back on a failure."""
        if req.verification != "review":
            return self.node.keyring.node().public_hex
        assert spec.validator is not None
        validator = self._agent(spec.validator, "validator")
        if validator.public_hex == poster.public_hex:
            raise AuctionError("invalid", "The validator cannot be the poster: it would judge work it pays for.")
        return validator.public_hex

    def _task_to_auction(self, req: AuctionRequest, poster: Identity) -> Task:
        if req.task_id is None:
            assert req.goal is not None
            try:
                spec = TaskSpec(goal=req.goal, skills=list(req.skills), budget=Budget(credits=req.reserve))
            except ValidationError as exc:
                raise AuctionError("invalid", f"Not a valid task: {exc.errors()[0]['msg']}") from exc
            return self.tasks.post(spec, actor=f"{ACTOR}:{poster.name}")
        try:
            task = self.tasks.get(req.task_id)
        except TaskNotFoundError as exc:
            raise AuctionError("not_found", f"No task {req.task_id}; post one with: colony tasks add") from exc
        if task.state != "posted" or task.assignee is not None:
            raise AuctionError("conflict", f"Task {task.id} is {task.state}; only a posted task can be auctioned.")
        return task

    # -- award --------------------------------------------------------------------------------
    def due(self) -> list[str]:
        """Open auctions this node's agents posted whose reveal deadline has passed: ready to award."""
        now = self.now()
        return [r["id"] for r in _store.list_auctions(self.db, states=["open"], posters=self.own_accounts(),
                                                      limit=1000)
                if now > r["reveal_deadline"]]

    def award(self, auction: str) -> str:
        """Settle an auction after its reveal deadline (module docstring, step 3); returns its state.

        Idempotent: an auction already awarded or void is left as it is. ``conflict`` for an
        auction another node's agent posted: that node awards it (module docstring).
        """
        row = self.row(auction)
        self._own(row["poster"], f"poster of auction {auction[:12]}…")
        if row["state"] != "open":
            return str(row["state"])
        now = self.now()
        if now <= row["reveal_deadline"]:
            raise AuctionError("not_ready", f"The auction takes reveals until {row['reveal_deadline']}; "
                                            f"award it after that ({row['reveal_deadline'] - now + 1} s).")
        poster_key = self._poster_key(row)
        treasury = stakes.treasury(self.node).public_hex

        def step() -> tuple[str, _Emitted]:
            emitted = _Emitted()
            self.db.lock(auction_lock(auction))
            fresh = _store.get_auction(self.db, auction)
            assert fresh is not None
            if fresh["state"] != "open":  # another worker awarded it while we waited for the lock
                return str(fresh["state"]), emitted
            return self._award(fresh, poster_key, treasury, now, emitted), emitted

        state, emitted = self.db.atomic(step)
        emitted.emit()
        return state

    def _award(self, row: Row, poster_key: SchnorrKey, treasury: str, now: int, emitted: _Emitted) -> str:
        auction = row["id"]
        terms = self.terms(auction)
        task = self.tasks.get(row["task_id"])
        bid_events = _store.auction_events(self.db, auction, [MARKET_KINDS["commit"], MARKET_KINDS["reveal"]])
        commits = [(e, open_market(e, CommitBody)) for e, _ in bid_events if e.kind == MARKET_KINDS["commit"]]
        if task.state != "bidding":  # cancelled (or failed) by a person while bidding: no award, bonds back
            for event, body in commits:
                if self.is_local(event.pubkey):  # a remote bidder's bond is on its home ledger: that node closes it
                    self._close_bond(body.bond_ref, event.pubkey, row["bond"], None)
                stakes.unlock(self.node, lock_ref(auction, event.pubkey))
            _store.move_auction(self.db, auction, "open", "void",
                                reason=f"the task was {task.state} during bidding")
            emitted.auctions.append("void")
            return "void"
        received = {e.id: at for e, at in bid_events}
        outcome = settle(terms, [e for e, _ in bid_events], now=now, received=received)
        award = award_event(poster_key, terms, outcome, created_at=now, received=received)
        _store.insert_event(self.db, award, auction, now)
        forfeited = {f.bidder for f in outcome.forfeits}
        for event, body in commits:
            if self.is_local(event.pubkey):  # a remote bidder's bond is on its home ledger (the award tells it)
                self._close_bond(body.bond_ref, event.pubkey, row["bond"],
                                 treasury if event.pubkey in forfeited else None)
            if event.pubkey != outcome.winner:
                stakes.unlock(self.node, lock_ref(auction, event.pubkey))
        emitted.bids["forfeited"] = len(forfeited)
        winner, price = outcome.winner, outcome.price
        reason = None
        if winner is None or price is None:
            reason = "no valid bid"
        elif self.ledger.balance(row["poster"]).balance < price:  # in the step: a hold below cannot be refused
            reason = f"the poster could not pay the price of {price} micro-credits"
        winner_ident = None if winner is None else self.node.keyring.by_public_key(winner)
        winner_name = winner_ident.name if winner_ident is not None else (
            None if winner is None else self.remote_bidder(auction, winner))
        if reason is None and winner_name is None:
            reason = "the winner is neither an agent of this node nor a bidder from a member node"
        if reason is not None:
            if winner is not None:
                stakes.unlock(self.node, lock_ref(auction, winner))
            _store.move_auction(self.db, auction, "open", "void", award_event=award.id, reason=reason)
            self.tasks.transition(task.id, "failed", actor=ACTOR, reason=f"auction {auction[:12]}…: {reason}",
                                  fields={"error": f"auction: {reason}"}, data={"auction": auction})
            emitted.auctions.append("void")
            return "void"
        assert winner is not None and price is not None and winner_name is not None
        hold = self.ledger.pay(poster_key, winner, price, op="hold", nonce=escrow_nonce("escrow", auction),
                               memo=f"market escrow {auction[:16]}")
        _store.move_auction(self.db, auction, "open", "awarded", winner=winner, winner_name=winner_name,
                            price=price, escrow_hold=hold.transfer_id, award_event=award.id)
        # The assignee is the winner's account: only the node hosting it claims the task (module docstring).
        self.tasks.transition(task.id, "assigned", actor=ACTOR,
                              reason=f"awarded to {winner_name} at {price} micro-credits",
                              fields={"assignee": winner},
                              data={"auction": auction, "winner": winner, "price": price})
        emitted.auctions.append("awarded")
        emitted.escrow.append(("held", price))
        return "awarded"

    def _close_bond(self, bond_ref: str, bidder: str, bond: int, to: str | None) -> None:
        """Capture a bond to ``to`` (a forfeit) or release it; only a real bond of this bidder, once."""
        hold = self.hold(bond_ref)
        if hold is None or hold.state != "held" or hold.payer != bidder or hold.amount != bond:
            return  # no bond, a bond already closed, or a bond_ref that names someone else's hold
        if to is None:
            self.ledger.release(hold.id)
        else:
            self.ledger.capture(hold.id, to)

    # -- verification and settlement ----------------------------------------------------------
    def awarded(self) -> list[str]:
        """Awarded auctions this node's agents posted: this node verifies and settles them."""
        return [r["id"] for r in _store.list_auctions(self.db, states=["awarded"], posters=self.own_accounts(),
                                                      limit=1000)]

    async def verify(self, auction: str) -> str | None:
        """Verify an awarded auction's result when its task is done and settle it; its new state,
        or None while there is nothing to decide yet (work in progress, a person's verdict pending).
        ``conflict`` for an auction another node's agent posted."""
        row = self.row(auction)
        self._own(row["poster"], f"poster of auction {auction[:12]}…")
        if row["state"] != "awarded" or _store.verification(self.db, auction) is not None:
            return None  # settled, or a remote winner's verdict recorded and its payment under way (`close_paid`)
        task = self.tasks.get(row["task_id"])
        if task.state == "cancelled":
            return self.cancel(auction)
        if task.state == "failed":
            verdict: Verdict | None = Verdict(False, f"the task failed: {task.error or 'no result'}"[:500])
        elif task.state == "completed":
            spec = VerifySpec.model_validate(row["verify_spec"])
            verdict = await run_check(self.node, row["verification"], spec, task.goal, task.result or "")
        else:
            return None
        if verdict is None:  # approval: a person decides (`decide`)
            return None
        signer = (self.node.keyring.node().schnorr_key if row["verification"] != "review"
                  else self.node.keyring.schnorr_key(self._own(row["verifier"], "validator").name))
        return self.settle(auction, verdict, signer=signer, decided_by=row["verification"])

    def decide(self, auction: str, passed: bool, *, actor: str, reason: str = "") -> str:
        """A person's verdict on an ``approval`` auction whose task is done; settles it at once."""
        row = self.row(auction)
        self._own(row["poster"], f"poster of auction {auction[:12]}…")
        if row["verification"] != "approval":
            raise AuctionError("conflict", f"Auction {auction[:12]}… is verified by {row['verification']}, "
                                           "not by a person.")
        if row["state"] != "awarded":
            raise AuctionError("conflict", f"Auction {auction[:12]}… is {row['state']}; only an awarded auction "
                                           "waits for a verdict.")
        if _store.verification(self.db, auction) is not None:
            raise AuctionError("conflict", f"Auction {auction[:12]}… has its verdict already; its payment is under "
                                           "way.")
        task = self.tasks.get(row["task_id"])
        if task.state not in ("completed", "failed"):
            raise AuctionError("not_ready", f"Task {task.id} is {task.state}; decide when the work is done.")
        detail = f"{'approved' if passed else 'rejected'} by {actor}" + (f": {reason}" if reason else "")
        return self.settle(auction, Verdict(passed, detail[:500]), signer=self.node.keyring.node().schnorr_key,
                           decided_by=f"person:{actor}"[:200])

    def settle(self, auction: str, verdict: Verdict, *, signer: SchnorrKey, decided_by: str) -> str:
        """Apply a verdict (module docstring, step 5) in one transaction; idempotent by the auction's state."""
        row = self.row(auction)
        poster_key = self._poster_key(row)
        winner = self.node.keyring.by_public_key(row["winner"]) if row["winner"] else None
        if winner is not None:  # a slash signs with the winner's key: unlock it (scrypt) before the write lock
            self.node.keyring.schnorr_key(winner.name)

        def step() -> tuple[str, _Emitted]:
            emitted = _Emitted()
            winner_stake = [stakes.stake_lock(row["winner"])] if row["winner"] else []
            self.db.lock(auction_lock(auction), *winner_stake)  # the slash below moves the winner's stake
            fresh = _store.get_auction(self.db, auction)
            assert fresh is not None
            if fresh["state"] != "awarded":  # settled by another worker (or a person) meanwhile
                return str(fresh["state"]), emitted
            return self._settle(fresh, verdict, signer, poster_key, decided_by, emitted), emitted

        state, emitted = self.db.atomic(step)
        emitted.emit()
        return state

    def _settle(self, row: Row, verdict: Verdict, signer: SchnorrKey, poster_key: SchnorrKey, decided_by: str,
                emitted: _Emitted) -> str:
        auction, winner, price, hold_id = row["id"], row["winner"], row["price"], row["escrow_hold"]
        now = self.now()
        event = verification_event(signer, auction, winner, verdict.passed, row["verification"], created_at=now,
                                   detail=verdict.detail)
        _store.insert_event(self.db, event, auction, now)
        outcome = settle_verification(price, verdict.passed, self.params)
        # A winner from another node is paid through x402 by capturing this escrow (`close_paid`), and its
        # stake is slashed by its home node, which alone signs its chain (`colony.federation.remote_market`).
        remote = not self.is_local(winner)
        hold = self.hold(hold_id)
        if hold is not None and hold.state == "held":
            if not verdict.passed:
                self.ledger.release(hold_id)
            elif not remote:
                self.ledger.capture(hold_id, winner)
        slashed = 0
        if outcome.slashed and not remote:  # signed with the winner's key, found by its account (module docstring)
            offender = self._own(winner, "winner").name
            slashed = stakes.slash(self.node, offender, outcome.slashed, ref=f"market:{auction}",
                                   reason=f"failed verification of auction {auction[:12]}…: {verdict.detail}"[:500])
        stakes.unlock(self.node, lock_ref(auction, winner))
        if verdict.passed and not remote and self.node.settings.market_contribution:  # before this counts as compute
            contribution.pay_bonus(self.db, self.ledger, auction=auction, winner=winner, price=price,
                                   params=self.params, nonce=escrow_nonce("contribution", auction))
        _store.insert_verification(self.db, {
            "auction": auction, "method": row["verification"], "passed": verdict.passed, "detail": verdict.detail,
            "event": event.id, "slashed": slashed, "decided_by": decided_by, "at": time.time()})
        if slashed:
            emitted.slashed.append(slashed)
        if remote and verdict.passed:
            return "awarded"  # the verdict is final; the payment follows, then `close_paid`
        return self._rate_and_close(row, verdict.passed, verdict.detail, poster_key, now, emitted)

    def _rate_and_close(self, row: Row, passed: bool, detail: str, poster_key: SchnorrKey, now: int,
                        emitted: _Emitted) -> str:
        """The poster's payment-backed rating and the auction's last move (paid or refunded)."""
        auction, winner, hold_id = row["id"], row["winner"], row["escrow_hold"]
        rating = feedback_event(poster_key, winner, hold_id, 100 if passed else 0, created_at=now)
        _store.insert_event(self.db, rating, auction, now)
        _store.insert_feedback(self.db, {
            "event": rating.id, "auction": auction, "rater": rating.pubkey, "ratee": winner, "payment_ref": hold_id,
            "score": 100 if passed else 0, "created_at": now})
        state = "paid" if passed else "refunded"
        _store.move_auction(self.db, auction, "awarded", state, reason=None if passed else detail)
        emitted.auctions.append(state)
        emitted.escrow.append(("captured" if passed else "refunded", row["price"]))
        return state

    def close_paid(self, auction: str) -> str:
        """Close an auction whose winner from another node was paid: its state after the step.

        Only when the passing verdict is recorded and this ledger shows the escrow captured to the
        winner — the x402 settlement did that (`colony.payments.credits`: an authorisation naming the
        hold captures it); the rating and ``paid`` follow in one step. Anything else leaves it awarded.
        """
        row = self.row(auction)
        poster_key = self._poster_key(row)

        def step() -> tuple[str, _Emitted]:
            emitted = _Emitted()
            self.db.lock(auction_lock(auction))
            fresh = _store.get_auction(self.db, auction)
            assert fresh is not None
            verdict = _store.verification(self.db, auction)
            hold = self.hold(fresh["escrow_hold"])
            if (fresh["state"] != "awarded" or verdict is None or not verdict["passed"] or hold is None
                    or hold.state != "captured" or hold.captured_to != fresh["winner"]):
                return str(fresh["state"]), emitted
            return self._rate_and_close(fresh, True, "", poster_key, self.now(), emitted), emitted

        state, emitted = self.db.atomic(step)
        emitted.emit()
        return state

    def cancel(self, auction: str) -> str:
        """An awarded auction whose task a person cancelled: the escrow goes back, nobody is rated or slashed.

        The poster's node's step, as the others (``conflict`` for another node's auction).
        """
        self._own(self.row(auction)["poster"], f"poster of auction {auction[:12]}…")

        def step() -> tuple[str, _Emitted]:
            emitted = _Emitted()
            self.db.lock(auction_lock(auction))
            row = _store.get_auction(self.db, auction)
            if row is None or row["state"] != "awarded":
                return (str(row["state"]) if row else "void"), emitted
            hold = self.hold(row["escrow_hold"])
            if hold is not None and hold.state == "held":
                self.ledger.release(hold.id)
            stakes.unlock(self.node, lock_ref(auction, row["winner"]))
            _store.move_auction(self.db, auction, "awarded", "cancelled", reason="the task was cancelled")
            emitted.auctions.append("cancelled")
            emitted.escrow.append(("refunded", row["price"]))
            return "cancelled", emitted

        state, emitted = self.db.atomic(step)
        emitted.emit()
        return state

    def abandon(self, auction: str, reason: str) -> str:
        """Give up an award whose winner delivered nothing: the escrow goes back, the auction is ``cancelled``
        with ``reason``, and the task returns to ``posted``, unassigned, to be auctioned again.

        Only while no result has come (the task still ``assigned``, no verdict): otherwise nothing changes
        and the auction's state is returned. Nobody is rated or slashed: the caller's deadline is its own
        clock, which no one else can check (`colony.federation.remote_faults`). May run inside a caller's
        step (it joins the transaction), so a re-auction can follow in the same one.
        """
        self._own(self.row(auction)["poster"], f"poster of auction {auction[:12]}…")

        def step() -> tuple[str, _Emitted]:
            emitted = _Emitted()
            self.db.lock(auction_lock(auction))
            row = _store.get_auction(self.db, auction)
            assert row is not None
            task = self.tasks.get(row["task_id"])
            if row["state"] != "awarded" or _store.verification(self.db, auction) is not None \
                    or task.state != "assigned":
                return str(row["state"]), emitted
            hold = self.hold(row["escrow_hold"])
            if hold is not None and hold.state == "held":
                self.ledger.release(hold.id)
            stakes.unlock(self.node, lock_ref(auction, row["winner"]))
            _store.move_auction(self.db, auction, "awarded", "cancelled", reason=reason[:500])
            self.tasks.transition(task.id, "posted", actor=ACTOR, reason=f"auction {auction[:12]}…: {reason}"[:500],
                                  fields={"assignee": None}, data={"auction": auction}, expect=("assigned",))
            emitted.auctions.append("cancelled")
            emitted.escrow.append(("refunded", row["price"]))
            return "cancelled", emitted

        state, emitted = self.db.atomic(step)
        emitted.emit()
        return state
