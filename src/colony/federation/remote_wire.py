"""Work across nodes, on the wire: the six message kinds and what each carries, parsed strictly.

Each is a federation message (`colony.federation.messages`: signed by the sending node, numbered,
delivered in order through its outbox); the content is one of the models below, and every market
event inside it is verified again by its receiver (`colony.market.events.open_market`):

- **7330, auction** (poster's node → members): the poster's signed announcement (kind 7200) and the
  URL where bids go (``POST /federation/v1/market/events``);
- **7331, award** (poster's node → members): the poster's signed award (7203), and the announcement,
  commits and reveals it was decided from, so a member rechecks it (`colony.market.auction.recheck`)
  before it releases or captures its bidders' bonds; ``award`` is None for an auction voided before
  any award (its task cancelled while bidding), which frees every bond; ``escrow`` names the hold
  that backs the price on the poster's ledger (what the winner's invoice is paid from);
- **7332, result** (winner's node → poster's node): an inner event of the same kind signed by the
  **winning agent** — auction, the winner's task id there, ``completed`` or ``failed``, the result;
- **7333, verdict** (poster's node → members): the verifier's signed verification (7204), which
  tells the winner's node to release its stake lock (pass) or slash it (fail);
- **7334, cancel** (poster's node → members): the award to a member's agent is given up —
  ``abandoned`` (no result by the result deadline), ``declined`` (the winner's node refused it) or
  ``cancelled`` (a person cancelled the task) — with the new auction of the same task, if any; the
  winner's node cancels its task and frees the stake lock (`colony.federation.remote_faults`);
- **7335, decline** (winner's node → poster's node): an award that arrived after this node had
  released its bids (the poster was silent past the reveal deadline + grace) is refused, so the
  poster gives it up at once instead of at the result deadline.

The award notice also carries the award's ``result_deadline`` (Unix seconds, the poster's clock):
the time by which the winner's result must be handled on the poster's node.

`member_agents` reads which agents a member hosts from its last stored announcement, whose cards
were verified when it arrived (each signed by its agent and naming that node): a bid from an
account no member announced, or from another member's agent, is refused.
"""

from __future__ import annotations

import json
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colony.errors import IdentityError
from colony.federation import _store, membership, remote_store
from colony.federation.errors import FederationError
from colony.identity.cards import verify_card_event
from colony.identity.events import Event, sign_event, verify_event
from colony.identity.keys import SchnorrKey
from colony.store import Database, Row

__all__ = [
    "AUCTION_KIND",
    "AWARD_KIND",
    "CANCEL_KIND",
    "DECLINE_KIND",
    "RESULT_KIND",
    "VERDICT_KIND",
    "AuctionNotice",
    "AwardNotice",
    "CancelNotice",
    "DeclineNotice",
    "ResultBody",
    "ResultNotice",
    "VerdictNotice",
    "member_agents",
    "parse",
    "read_result",
    "result_event",
]

AUCTION_KIND = 7330
AWARD_KIND = 7331
RESULT_KIND = 7332
VERDICT_KIND = 7333
CANCEL_KIND = 7334
DECLINE_KIND = 7335
HEX64 = r"^[0-9a-f]{64}$"
#: A result longer than this belongs in a workspace file the result names.
MAX_RESULT_CHARS = 32_000


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuctionNotice(_Content):
    announcement: Event
    url: str = Field(pattern=r"^https?://[^/\s?#]+(/[^\s?#]*)?$", max_length=500)


class AwardNotice(_Content):
    auction: str = Field(pattern=HEX64)
    award: Event | None
    events: list[Event] = Field(max_length=2000)
    escrow: str | None = Field(default=None, pattern=HEX64)
    result_deadline: int | None = Field(default=None, ge=0)


class CancelNotice(_Content):
    auction: str = Field(pattern=HEX64)
    winner: str = Field(pattern=HEX64)
    reason: Literal["abandoned", "declined", "cancelled"]
    detail: str = Field(max_length=500)
    reauction: str | None = Field(default=None, pattern=HEX64)


class DeclineNotice(_Content):
    auction: str = Field(pattern=HEX64)
    winner: str = Field(pattern=HEX64)
    detail: str = Field(max_length=500)


class ResultNotice(_Content):
    result: Event


class VerdictNotice(_Content):
    auction: str = Field(pattern=HEX64)
    verification: Event


class ResultBody(_Content):
    """The content of the winner's signed result (canonical JSON, keys sorted)."""

    auction: str = Field(pattern=HEX64)
    task_id: str = Field(min_length=1, max_length=64)
    status: Literal["completed", "failed"]
    result: str = Field(max_length=MAX_RESULT_CHARS)


M = TypeVar("M", bound=_Content)


def parse(event: Event, kind: int, model: type[M]) -> M:
    """The content of a message of ``kind``; `FederationError` (``invalid``) when it is not one."""
    if event.kind != kind:
        raise FederationError(f"Expected a message of kind {kind}, not {event.kind}.", reason="invalid")
    try:
        return model.model_validate_json(event.content)
    except ValidationError as exc:
        raise FederationError(f"Not a valid {model.__name__}: {exc.errors()[0]['msg']}.", reason="invalid") from exc


def _canonical(body: ResultBody) -> str:
    return json.dumps(body.model_dump(), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def result_event(key: SchnorrKey, body: ResultBody) -> Event:
    """The winner's result, signed by the winning agent's own key."""
    return sign_event(key, RESULT_KIND, _canonical(body), [])


def read_result(event: Event) -> ResultBody:
    """The verified result inside a winner's event; `FederationError` (``bad_signature``/``invalid``) otherwise."""
    if event.kind != RESULT_KIND or not verify_event(event):
        raise FederationError("The result is not a signed kind-7332 event: its id or signature does not verify.",
                              reason="bad_signature")
    try:
        body = ResultBody.model_validate_json(event.content)
    except ValidationError as exc:
        raise FederationError(f"Not a valid result: {exc.errors()[0]['msg']}.", reason="invalid") from exc
    if _canonical(body) != event.content:
        raise FederationError("The result's content is not in canonical form.", reason="invalid")
    return body


def member_agents(db: Database, member: str) -> dict[str, str]:
    """The agents a trusted member announced (account → name), from its stored announcement's cards."""
    row = _store.get_member(db, member)
    if row is None or row["status"] != "trusted" or not row["last_announcement"]:
        return {}
    try:
        cards = json.loads(row["last_announcement"]["content"])["agents"]
    except (ValueError, KeyError, TypeError):
        return {}
    agents: dict[str, str] = {}
    for raw in cards:
        try:
            card = verify_card_event(raw)
        except IdentityError:
            continue
        ext = card.get("colony") or {}
        if (ext.get("node") or {}).get("pubkey") == member and isinstance(card.get("name"), str):
            agents[str(ext["pubkey"])] = str(card["name"])[:64]
    return agents


def notice_from_origin(db: Database, message: Event, kind: int, model: type[M], what: str) -> tuple[M, Row] | None:
    """A poster's notice about a remote auction this node keeps, with that auction's row.

    None — the message dropped — when it does not parse (recorded as ``bad_signature``), names an
    auction this node took no part in, or comes from another node than the one that announced it
    (recorded too: only the auction's own node speaks for it).
    """
    sender = message.pubkey
    try:
        notice = parse(message, kind, model)
    except FederationError as exc:
        membership.record(db, sender, "bad_signature", f"{what} refused: {exc}")
        return None
    auction = getattr(notice, "auction")  # noqa: B009 — every notice names its auction
    row = remote_store.get_remote(db, auction)
    if row is None:
        return None
    if row["origin"] != sender:
        membership.record(db, sender, "bad_signature", f"{what} about auction {auction[:16]}…, which another "
                          "node announced")
        return None
    return notice, row
