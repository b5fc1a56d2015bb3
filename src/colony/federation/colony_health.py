"""Each member's health as its latest announcement states it, for the Colony page.

A member's signed announcement (kind 7300, `colony.federation.messages.Announcement`) carries a small
status (`colony.federation.announce.Announcer`: ``health``, open tasks, trusted members, the ledger's
state root) and the colony facts (`colony.federation.colony_facts`: benchmark score, federated
averaging), plus its version, start time and the queen and term it follows. This module reads them
back from ``federation_nodes.last_announcement`` — read-only, nothing recomputed — into `HealthOut`.

The announcement is signed by a trusted member, yet every field is still a peer's word: the status
dict is parsed strictly (`_Status`, wrong types give None), strings are cleaned and cut
(`colony.federation.colony_graph.clean_name`), and a stored announcement that does not parse gives a
`HealthOut` with ``announced=False``. The surfaces escape whatever is left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colony.federation import _store
from colony.federation.colony_facts import announced_facts
from colony.federation.colony_graph import clean_name
from colony.federation.messages import Announcement
from colony.identity.events import Event

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["HealthOut", "member_health"]


class _Status(BaseModel):
    """The announcer's ``status`` fields this page shows; anything else is ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    health: str | None = Field(default=None, max_length=200)
    open_tasks: int | None = Field(default=None, ge=0)
    members: int | None = Field(default=None, ge=0)
    ledger_root: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class HealthOut(BaseModel):
    """One member as its latest announcement describes itself."""

    pubkey: str
    announced: bool
    announced_at: int | None = None
    version: str = ""
    started_at: float | None = None
    health: str | None = None
    open_tasks: int | None = None
    members: int | None = None
    ledger_root: str | None = None
    queen: str | None = None
    term: int = 0
    queen_seen_s: float | None = None
    bench_score: float | None = None
    learning: bool = False
    learning_round: int | None = None
    learning_samples: int = 0
    cards: int = 0


def _status(raw: dict[str, object]) -> _Status:
    try:
        return _Status.model_validate(raw)
    except ValidationError:
        # One bad field must not hide the others: keep each that parses alone.
        fields: dict[str, object] = {}
        for name in _Status.model_fields:
            try:
                fields[name] = getattr(_Status.model_validate({name: raw.get(name)}), name)
            except ValidationError:
                continue
        return _Status.model_validate(fields)


def _health(pubkey: str, stored: object) -> HealthOut:
    if not isinstance(stored, dict):
        return HealthOut(pubkey=pubkey, announced=False)
    try:
        event = Event.model_validate(stored)
        announcement = Announcement.model_validate_json(event.content)
    except ValidationError:
        return HealthOut(pubkey=pubkey, announced=False)
    status = _status(announcement.status)
    facts = announced_facts(stored)
    score = facts.bench.score
    return HealthOut(
        pubkey=pubkey, announced=True, announced_at=event.created_at, version=clean_name(announcement.version),
        started_at=announcement.started_at or None, health=clean_name(status.health) if status.health else None,
        open_tasks=status.open_tasks, members=status.members, ledger_root=status.ledger_root,
        queen=announcement.role.queen, term=announcement.role.term, queen_seen_s=announcement.queen_seen_s,
        bench_score=score if score is not None and 0.0 <= score <= 1.0 else None, learning=facts.learning.on,
        learning_round=facts.learning.round, learning_samples=facts.learning.samples, cards=len(announcement.agents))


def member_health(node: Node) -> dict[str, HealthOut]:
    """Every member this node knows (removed ones too), by pubkey."""
    return {m["pubkey"]: _health(m["pubkey"], m["last_announcement"]) for m in _store.list_members(node.db)}
