"""Beta reputation (Jøsang & Ismail 2002) with forgetting, anchored in settled payments.

A key's standing is a pair (r, s) of discounted good and bad evidence; its reputation is the
expectation of Beta(r+1, s+1), ``E = (r+1)/(r+s+2)``. Each counted feedback with outcome
``v = score/100`` first forgets (``r ← λr, s ← λs``) and then adds ``w·v`` to r and ``w·(1−v)`` to
s, where the weight ``w`` is the rater's own reputation at that moment: a newcomer rates at the
prior's 0.5, an established good rater near 1, a bad one near 0.

Why these guards: a rating costs nothing, so it counts only when backed by a settled payment
between rater and ratee (``is_settled`` is the caller's check against the ledger); one rating per
payment from each side (no farming one payment); no self-rating, by key or by owner when owners
are known (an agent rating its node-mate); and every key starts at the prior, so a fresh sybil
identity is no better than an unknown one and its ratings weigh little.

Replaying the feedback events in (created_at, event id) order always gives the same book.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.market.events import FeedbackBody, open_market, sign_market

__all__ = [
    "PRIOR",
    "Feedback",
    "ReputationBook",
    "ReputationParams",
    "SettledCheck",
    "Standing",
    "expectation",
    "feedback_event",
    "read_feedback",
    "replay",
]

#: Everyone's reputation before any evidence: E of Beta(1, 1).
PRIOR = 0.5

#: ``is_settled(payment_ref, rater, ratee)``: did ``rater`` and ``ratee`` settle that payment
#: between them (an escrow captured or refunded through verification)?
SettledCheck = Callable[[str, str, str], bool]


@dataclass(frozen=True)
class ReputationParams:
    #: λ, applied to a key's evidence at each of its updates. 0.95 keeps ~20 updates of memory
    #: (1/(1−λ)): recent behaviour dominates, so a good history cannot be cashed in for long.
    forgetting: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.forgetting <= 1.0:
            raise ValueError("the forgetting factor is in (0, 1]")


def expectation(r: float, s: float) -> float:
    return (r + 1.0) / (r + s + 2.0)


@dataclass(frozen=True)
class Standing:
    r: float = 0.0
    s: float = 0.0
    count: int = 0

    @property
    def expectation(self) -> float:
        return expectation(self.r, self.s)

    def updated(self, v: float, weight: float, forgetting: float) -> Standing:
        return Standing(forgetting * self.r + weight * v, forgetting * self.s + weight * (1.0 - v), self.count + 1)


@dataclass(frozen=True)
class Feedback:
    """One rating as read from its verified event."""

    event_id: str
    rater: str
    ratee: str
    payment_ref: str
    score: int
    at: int


def feedback_event(key: SchnorrKey, ratee: str, payment_ref: str, score: int, *, created_at: int) -> Event:
    return sign_market(key, FeedbackBody(ratee=ratee, payment_ref=payment_ref, score=score), created_at=created_at)


def read_feedback(event: Event) -> Feedback:
    """The verified rating in ``event`` (MarketEventError when refused)."""
    body = open_market(event, FeedbackBody)
    return Feedback(event.id, event.pubkey, body.ratee, body.payment_ref, body.score, event.created_at)


@dataclass
class ReputationBook:
    """Standings built one feedback at a time; `replay` builds one from events in canonical order.

    Mutable on purpose (a run is state): `add` is the only way in, and it refuses what the guards
    refuse, recording why in ``ignored``.
    """

    is_settled: SettledCheck
    owners: Mapping[str, str] = field(default_factory=dict)
    params: ReputationParams = field(default_factory=ReputationParams)
    standings: dict[str, Standing] = field(default_factory=dict, init=False)
    #: (event id, reason) of every feedback the guards refused.
    ignored: list[tuple[str, str]] = field(default_factory=list, init=False)
    _used: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)

    def expectation(self, key: str) -> float:
        """Reputation of ``key``; the prior for a key never rated."""
        standing = self.standings.get(key)
        return PRIOR if standing is None else standing.expectation

    def add(self, fb: Feedback) -> str | None:
        """Apply ``fb``; None when it counted, otherwise the reason it was ignored."""
        reason = self._refusal(fb)
        if reason is not None:
            self.ignored.append((fb.event_id, reason))
            return reason
        self._used.add((fb.payment_ref, fb.rater))
        weight = self.expectation(fb.rater)
        self.standings[fb.ratee] = self.standings.get(fb.ratee, Standing()).updated(
            fb.score / 100, weight, self.params.forgetting)
        return None

    def _refusal(self, fb: Feedback) -> str | None:
        if not 0 <= fb.score <= 100:
            return "bad_score"
        if fb.rater == fb.ratee:
            return "self_rating"
        owner = self.owners.get(fb.rater)
        if owner is not None and owner == self.owners.get(fb.ratee):
            return "self_rating"
        if (fb.payment_ref, fb.rater) in self._used:
            return "duplicate"
        if not self.is_settled(fb.payment_ref, fb.rater, fb.ratee):
            return "unsettled"
        return None


def replay(feedback: Iterable[Feedback], *, is_settled: SettledCheck, owners: Mapping[str, str] | None = None,
           params: ReputationParams | None = None) -> ReputationBook:
    """The book that ``feedback`` produces, applied in (created_at, event id) order."""
    book = ReputationBook(is_settled=is_settled, owners=dict(owners or {}), params=params or ReputationParams())
    for fb in sorted(feedback, key=lambda f: (f.at, f.event_id)):
        book.add(fb)
    return book
