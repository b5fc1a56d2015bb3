"""Federated averaging over the colony's messages: updates to the queen, her canonical to everyone.

`colony.federation.learning` has the rules (what an update and a canonical are, the capped mean,
adoption); this module runs them between nodes. Only a node whose cognition runs the step
predictor (`Node.cognition`, ``COLONY_COGNITION_ENABLED``) takes part; any other node says so in its
announcement and status, and still keeps the last canonical it receives.

Every ``federation_learn_every`` heartbeats the loop calls `Learner.step`:

- **a member** (not the queen) that has learned something since its canonical round sends its
  update (kind 7310) to the queen it follows; it sends again only when its round, its sample count
  or the queen changed, and the queen keeps one update per member per round (the newest);
- **the queen** pools the updates that start from her round (`handle_update`: each is checked by
  `open_update`; one from another round is dropped, one that does not verify is an incident), adds
  her own, and closes the round when every live member that announces new samples for that round
  has sent its update, or `DEADLINE_STEPS` learning steps after the pool opened: `fedavg`, sent to
  every member as a canonical (kind 7311) of round + 1, then adopted by herself.

Every node takes a canonical only from the queen its view follows (`handle_canonical`:
`open_canonical` with that one key; a former queen's late canonical is dropped, a bad one is an
incident), keeps it, and blends it into its predictor (`apply_canonical`, ``blend``) when it is newer
than the predictor's round. Rounds never go back: the queen's round and the kept canonical are
persisted in the cognition store (name ``colony_learning``), so a node that takes over as queen
continues from the last canonical it received, and a restart loses nothing but a pool in progress.

Messages are sent before the round is recorded as closed: a crash in between makes the queen close
the same round again, and a member that already adopted the first copy refuses the second as stale
(`apply_canonical`), where the other order could leave the members waiting on a round nobody sent.

The predictor's weights are read (an update) and replaced (an adoption) under the substrate's lock
(`Substrate.exclusive`), so a tool call's learning step never runs in between: it lands before the
snapshot or after the blend, never on weights about to be replaced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from colony.cognition import state
from colony.federation import _store
from colony.federation.colony_facts import announced_facts
from colony.federation.errors import FederationError
from colony.federation.learning import (
    LEARNING_KINDS,
    CanonicalBody,
    LearningError,
    UpdateBody,
    apply_canonical,
    fedavg,
    make_update,
    open_canonical,
    open_update,
)
from colony.federation.membership import record
from colony.federation.messages import register_handler
from colony.federation.outbox import broadcast, send
from colony.federation.roles import current_role
from colony.identity.events import Event

if TYPE_CHECKING:
    from colony.cognition.predictor import StepPredictor
    from colony.node import Node
    from colony.store import Database

__all__ = ["CANONICAL_KIND", "DEADLINE_STEPS", "UPDATE_KIND", "ContributorOut", "Learner", "LearningOut", "canonical", "handle_canonical",
           "handle_update", "learning_status"]

log = logging.getLogger("colony.federation")

UPDATE_KIND = LEARNING_KINDS["update"]
CANONICAL_KIND = LEARNING_KINDS["canonical"]
#: The queen closes a round this many learning steps after its pool opened, whoever is missing.
DEADLINE_STEPS = 3
#: Load-modify-save of the persisted round is one critical section per process (handlers run in
#: the server's threads, the step in the loop's).
_lock = threading.Lock()


@dataclass
class _Round:
    """The persisted learning state (a cognition `Module`: ``colony.cognition.state`` saves it)."""

    name: str = "colony_learning"
    enabled: bool = True
    round: int = 0
    canonical: str | None = None  # the last canonical's content (a `CanonicalBody`)
    signer: str | None = None     # the queen that signed it
    at: float | None = None
    base: int = 0                 # the round the pool's updates start from
    opened_at: float | None = None
    pool: dict[str, str] = field(default_factory=dict)  # member -> its update's content

    def dump(self) -> dict[str, Any]:
        return {"round": self.round, "canonical": self.canonical, "signer": self.signer, "at": self.at,
                "base": self.base, "opened_at": self.opened_at, "pool": dict(self.pool)}

    def load(self, saved: Mapping[str, Any]) -> None:
        self.round = int(saved.get("round", 0))
        self.canonical, self.signer = saved.get("canonical"), saved.get("signer")
        self.at, self.opened_at = saved.get("at"), saved.get("opened_at")
        self.base = int(saved.get("base", 0))
        self.pool = {str(k): str(v) for k, v in dict(saved.get("pool", {})).items()}

    def status(self) -> dict[str, Any]:
        return {"enabled": True, "round": self.round}

    def adopt(self, body: CanonicalBody, signer: str, at: float) -> bool:
        """Keep ``body`` if it is newer than the kept canonical; the pool restarts from it."""
        if body.round <= self.round:
            return False
        self.round, self.canonical, self.signer, self.at = body.round, body.content(), signer, at
        self.base, self.opened_at, self.pool = body.round, None, {}
        return True

    def kept(self) -> CanonicalBody | None:
        if self.canonical is None:
            return None
        try:
            return CanonicalBody.model_validate_json(self.canonical)
        except ValidationError:
            return None


def _load(db: Database) -> _Round:
    found = _Round()
    state.restore(db, [found])
    return found


def _save(db: Database, found: _Round) -> None:
    state.save(db, [found])


def canonical(db: Database) -> CanonicalBody | None:
    """The last canonical this node received or made (None before the first)."""
    return _load(db).kept()


def _predictor(node: Node) -> StepPredictor | None:
    substrate = node.cognition
    return substrate.predictor if substrate is not None else None


def _exclusive(node: Node) -> AbstractContextManager[object]:
    """The substrate's lock (module docstring), or nothing when cognition is off."""
    substrate = node.cognition
    return substrate.exclusive() if substrate is not None else nullcontext()


def _adopt_own(node: Node, body: CanonicalBody) -> None:
    """Blend ``body`` into this node's predictor when it is newer than the predictor's round."""
    predictor = _predictor(node)
    substrate = node.cognition
    if predictor is None or substrate is None:
        return
    with substrate.exclusive():
        if body.round <= predictor.canonical_round:
            return
        kept = apply_canonical(predictor, body, mode="blend")
        substrate.save()
    log.info("federation: adopted canonical round %d (kept %.2f of this node's own weights)", body.round, kept)


# -- handlers ---------------------------------------------------------------------------------------
def handle_update(node: Node, event: Event) -> None:
    """Kind 7310 on the queen: pool a member's update for her open round."""
    db = node.db
    if current_role(db).queen != node.keyring.node().public_hex:
        log.info("federation: an update from %s… reached a node that is not the queen; dropped", event.pubkey[:12])
        return
    with _lock:
        found = _load(db)
        try:
            body = open_update(event, base_round=found.round)
        except LearningError as exc:
            if exc.reason == "stale_round":  # a member that has not adopted the last canonical yet
                log.info("federation: update from %s… dropped: %s", event.pubkey[:12], exc)
            else:
                record(db, event.pubkey, "bad_signature", f"federated-averaging update refused ({exc.reason}): {exc}")
            return
        if found.base != found.round:
            found.base, found.pool, found.opened_at = found.round, {}, None
        found.pool[event.pubkey] = body.content()
        found.opened_at = found.opened_at or time.time()
        _save(db, found)


def handle_canonical(node: Node, event: Event) -> None:
    """Kind 7311 on every node: keep and adopt the queen's canonical."""
    db = node.db
    queen = current_role(db).queen
    try:
        body = open_canonical(event, queens=frozenset({queen} if queen else ()))
    except LearningError as exc:
        if exc.reason == "not_queen":  # a former queen's message, delivered after a takeover
            log.info("federation: canonical from %s… dropped: %s", event.pubkey[:12], exc)
        else:
            record(db, event.pubkey, "bad_signature", f"canonical refused ({exc.reason}): {exc}")
        return
    with _lock:
        found = _load(db)
        if found.adopt(body, event.pubkey, time.time()):
            _save(db, found)
    _adopt_own(node, body)


register_handler(UPDATE_KIND, handle_update)
register_handler(CANONICAL_KIND, handle_canonical)


# -- the loop's step --------------------------------------------------------------------------------
class Learner:
    """One node's part in the rounds (held by its federation loop): what it last sent."""

    def __init__(self, node: Node, *, interval_s: float) -> None:
        self.node, self.interval_s = node, interval_s
        self._sent: tuple[str, int, int] | None = None

    @property
    def deadline_s(self) -> float:
        return DEADLINE_STEPS * self.interval_s

    def step(self, me: str, live: frozenset[str]) -> CanonicalBody | None:
        """One learning step (see the module docstring); returns the canonical the queen made, if any."""
        predictor = _predictor(self.node)
        queen = current_role(self.node.db).queen
        if predictor is None or queen is None:
            return None
        if queen != me:
            self._send(predictor, queen)
            return None
        return self._close(predictor, me, live)

    def _send(self, predictor: StepPredictor, queen: str) -> None:
        sent = (queen, predictor.canonical_round, predictor.samples_since_round)
        if predictor.samples_since_round < 1 or sent == self._sent:
            return
        try:
            with _exclusive(self.node):
                update = make_update(predictor)
            send(self.node, queen, UPDATE_KIND, update.content())
        except FederationError as exc:  # e.g. a queen this node only knows through a member's vouch
            log.info("federation: cannot send the learning update to the queen: %s", exc)
            return
        self._sent = sent

    def _close(self, predictor: StepPredictor, me: str, live: frozenset[str]) -> CanonicalBody | None:
        db, now = self.node.db, time.time()
        with _lock:
            found = _load(db)
            if predictor.canonical_round > found.round:  # the kept round was lost: rounds never go back
                found.round = found.base = predictor.canonical_round
                found.pool, found.opened_at = {}, None
            base = found.round
            updates = {k: UpdateBody.model_validate_json(v) for k, v in found.pool.items()} if found.base == base else {}
            if predictor.canonical_round == base and predictor.samples_since_round >= 1:
                with _exclusive(self.node):
                    updates[me] = make_update(predictor)
            if not updates:
                return None
            if found.opened_at is None:
                found.opened_at = now
                _save(db, found)
            expected = {me} if me in updates else set()
            for member in _store.list_members(db, "trusted"):
                facts = announced_facts(member["last_announcement"]).learning
                if member["pubkey"] in live and facts.on and facts.round == base and facts.samples >= 1:
                    expected.add(member["pubkey"])
            if not expected <= set(updates) and now - found.opened_at < self.deadline_s:
                return None
            body = fedavg(updates, base_round=base)
            broadcast(self.node, CANONICAL_KIND, body.content())
            found.adopt(body, me, now)
            _save(db, found)
        log.info("federation: closed round %d with %d contributors", body.round, len(body.contributors))
        _adopt_own(self.node, body)
        return body


# -- status -------------------------------------------------------------------------------------------
class ContributorOut(BaseModel):
    node: str
    samples: int
    weight: float


class LearningOut(BaseModel):
    """This node's part in federated averaging, as ``/api/v1/peers/status`` shows it."""

    enabled: bool
    reason: str | None = None
    round: int
    queen: str | None
    predictor_round: int | None = None
    samples_since_round: int | None = None
    canonical_at: float | None = None
    contributors: list[ContributorOut] = []
    pool: list[str] = []


def learning_status(node: Node) -> LearningOut:
    """The kept round and its contributors, the predictor's round, and (on the queen) the open pool."""
    found = _load(node.db)
    body = found.kept()
    contributors = [ContributorOut(node=c.node, samples=c.samples, weight=c.weight)
                    for c in (body.contributors if body is not None else ())]
    predictor = _predictor(node)
    reason = None if predictor is not None else (
        "cognition is off on this node (COLONY_COGNITION_ENABLED): it takes no part in federated averaging"
        if node.cognition is None else "the step predictor is switched off (cognition_disabled_modules)")
    return LearningOut(enabled=predictor is not None, reason=reason, round=found.round, queen=found.signer,
                       predictor_round=predictor.canonical_round if predictor is not None else None,
                       samples_since_round=predictor.samples_since_round if predictor is not None else None,
                       canonical_at=found.at, contributors=contributors,
                       pool=sorted(found.pool) if found.base == found.round else [])
