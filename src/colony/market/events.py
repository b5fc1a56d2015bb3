"""The market's signed events: kinds and wire formats, byte for byte, in one place.

Every market message is a NIP-01 event (`colony.identity.events`) with no tags and canonical
JSON content (keys sorted, no whitespace, non-ASCII verbatim), like the ledger's. Parsing is
strict: the id is recomputed and the BIP-340 signature checked (`verify_event`), the kind must be
the one the body type names, and the content must be exactly the canonical serialisation of
valid fields — so no field can carry a second meaning and every stored field can be recomputed
into the signed bytes.

Kinds live in `MARKET_KINDS`, in the regular range next to the ledger's 7100–7102: 7200–7209 for
auctions, verification and feedback, 7210–7219 kept for governance (four are named; the others are
free for it). NIP-90's public job market (5000–7000) and NIP-32 labels (1985) are left alone.

The auction id is not chosen by anyone: it is the hash of the announcement's canonical content
(poster, terms and a random nonce), so a bidder's commitment commits to the exact terms it saw and
a commit or reveal cannot be replayed into another auction.

Errors (a branch of `colony.errors.ColonyError`)::

    MarketError
    ├── MarketEventError    an event refused as sent (``reason``: bad_signature, wrong_kind, malformed…)
    ├── AuctionOpenError    settling before the reveal deadline has passed
    └── InvalidProofError   a slashing proof that does not verify or does not convict the staker
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from colony.errors import ColonyError
from colony.identity.events import Event, event_id, verify_event
from colony.identity.keys import SchnorrKey
from colony.ledger.amounts import MAX_AMOUNT

__all__ = [
    "GOVERNANCE_KINDS",
    "MARKET_KINDS",
    "Announcement",
    "AuctionOpenError",
    "AwardBody",
    "CommitBody",
    "FeedbackBody",
    "InvalidProofError",
    "MarketError",
    "MarketEventError",
    "RevealBody",
    "Rule",
    "Verification",
    "VerificationBody",
    "open_market",
    "sign_market",
]

MARKET_KINDS: dict[str, int] = {
    "announcement": 7200,  # a poster's call for bids: goal, skills, reserve, deadlines, bond, rule
    "commit": 7201,        # a bidder's sealed bid: the commitment digest only
    "reveal": 7202,        # the bidder's amount and salt, after the commit deadline
    "award": 7203,         # the poster's settlement: winner, price, ranking (recheckable by anyone)
    "verification": 7204,  # the verifier's pass/fail on the winner's result: decides pay or refund+slash
    "feedback": 7205,      # a rating backed by a settled payment
    "proposal": 7210,      # governance (7210-7219 reserved for it)
    "vote": 7211,
    "veto": 7212,
    "execution": 7213,
}
#: Kinds reserved for governance; the unnamed ones are free for it and for nothing else.
GOVERNANCE_KINDS = range(7210, 7220)

Rule = Literal["vickrey", "first_price", "random"]
Verification = Literal["tests", "benchmark", "review", "approval"]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Amount = Annotated[int, Field(ge=1, le=MAX_AMOUNT)]
Time = Annotated[int, Field(ge=0, lt=2**53)]

#: Prefix of the hash that names an auction (keeps it apart from every other sha256 in Colony).
AUCTION_DOMAIN = b"colony/market/auction/v1\x00"


class MarketError(ColonyError):
    code = "market_error"


class MarketEventError(MarketError):
    """An event refused as sent; ``reason`` is a stable code, the message says what was wrong."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = self.code = reason
        super().__init__(message)


class AuctionOpenError(MarketError):
    code = "auction_open"


class InvalidProofError(MarketError):
    code = "invalid_proof"


def _canonical(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class _Body(BaseModel):
    """Content of one market kind; strict types, unknown fields refused, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    KIND: ClassVar[str]

    v: Literal[1] = 1

    def content(self) -> str:
        return _canonical(self.model_dump(mode="json"))


class Announcement(_Body):
    """A procurement auction's terms. ``reserve`` is the most the poster will pay."""

    KIND: ClassVar[str] = "announcement"

    poster: Hex64
    goal: str = Field(min_length=1, max_length=4000)
    skills: tuple[str, ...] = Field(max_length=32)
    reserve: Amount
    commit_deadline: Time
    reveal_deadline: Time
    bond: int = Field(ge=0, le=MAX_AMOUNT)
    verification: Verification
    rule: Rule = "vickrey"
    nonce: Hex64

    @model_validator(mode="after")
    def _phases(self) -> Announcement:
        if self.reveal_deadline <= self.commit_deadline:
            raise ValueError("the reveal deadline must come after the commit deadline")
        return self

    @property
    def auction_id(self) -> str:
        """sha256 of the domain and the canonical terms: binds poster, terms and nonce."""
        return hashlib.sha256(AUCTION_DOMAIN + self.content().encode()).hexdigest()


class CommitBody(_Body):
    """A sealed bid: only the digest; ``bond_ref`` names the escrow hold that backs the bond."""

    KIND: ClassVar[str] = "commit"

    auction: Hex64
    digest: Hex64
    bond_ref: str = Field(default="", max_length=128)


class RevealBody(_Body):
    """The opening of a commitment. ``amount`` is any integer here; the auction rules judge it."""

    KIND: ClassVar[str] = "reveal"

    auction: Hex64
    amount: int = Field(ge=-(2**63), lt=2**63)
    salt: Hex64


class AwardBody(_Body):
    """The poster's settlement; ``received`` holds the poster's arrival times (event id -> time)."""

    KIND: ClassVar[str] = "award"

    auction: Hex64
    winner: Hex64 | None
    price: Amount | None
    ranking: tuple[tuple[Hex64, Amount], ...]
    forfeits: tuple[Hex64, ...]
    received: dict[Hex64, Time] = Field(default_factory=dict)


class VerificationBody(_Body):
    """A verifier's judgement of the winner's result under the announced method."""

    KIND: ClassVar[str] = "verification"

    auction: Hex64
    worker: Hex64
    passed: bool
    method: Verification
    detail: str = Field(default="", max_length=2000)


class FeedbackBody(_Body):
    """A rating (0-100, ERC-8004's response scale) of ``ratee`` backed by payment ``payment_ref``."""

    KIND: ClassVar[str] = "feedback"

    ratee: Hex64
    payment_ref: str = Field(min_length=1, max_length=128)
    score: int = Field(ge=0, le=100)


B = TypeVar("B", bound=_Body)


def sign_market(key: SchnorrKey, body: _Body, *, created_at: int) -> Event:
    """``body`` as a signed event of its kind by ``key``."""
    kind = MARKET_KINDS[body.KIND]
    content = body.content()
    pubkey = key.public_hex  # a property that derives the key each time: once here
    eid = event_id(pubkey, created_at, kind, [], content)
    return Event(id=eid, pubkey=pubkey, created_at=created_at, kind=kind, tags=[], content=content,
                 sig=key.sign(bytes.fromhex(eid)).hex())


def open_market(event: Event, body_type: type[B]) -> B:
    """The verified body of ``event``; MarketEventError (with a ``reason``) when it is refused.

    Checked in this order: id recomputed and signature (``bad_signature``), kind
    (``wrong_kind``), tags (``malformed``: market events carry none), content fields and
    canonical form (``malformed``).
    """
    if not verify_event(event):
        raise MarketEventError("bad_signature", f"event {event.id[:12]}… does not verify (id or signature)")
    if event.kind != MARKET_KINDS[body_type.KIND]:
        raise MarketEventError("wrong_kind", f"event {event.id[:12]}… is kind {event.kind}, not a {body_type.KIND}")
    if event.tags:
        raise MarketEventError("malformed", "market events carry no tags; everything signed is in the content")
    try:
        body = body_type.model_validate_json(event.content)
    except ValidationError as exc:
        raise MarketEventError("malformed", f"not a valid {body_type.KIND}: {exc.errors()[0]['msg']}") from exc
    if body.content() != event.content:
        raise MarketEventError("malformed", f"the {body_type.KIND} content is not in canonical form")
    return body
