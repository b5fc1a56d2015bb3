"""What a node tells its colony about itself in every announcement, and how a peer reads it back.

Every announcement (kind 7300) carries, under ``status.colony``, the facts `colony.federation.psi`
and the queen's averaging rounds need about its sender (`own_facts`):

- ``learning``: whether the node takes part in federated averaging (cognition and its step
  predictor on), the canonical round its predictor started from, the samples it has learned since,
  and its parameters: always as a SHA-256 digest of the float64 vector, and as the vector itself
  (float16, base64: about 1 KB for today's 385 parameters) only while that stays under
  `MAX_PARAMS_B64` characters, so a bigger model announces its digest and round and nothing more;
- ``bench``: the node's latest complete coding-benchmark score and a short history of them
  (`colony.bench.runs`), for Psi's Intelligence and Velocity.

float16 is enough: Psi only takes the cosine between a peer's vector and the canonical one, and the
learned weights are bounded far inside float16's range (`colony.federation.learning.MAX_ABS_PARAM`).

The announcement is signed by a trusted member, but its status is still parsed strictly
(`ColonyFacts`); a malformed or missing part makes the peer count as reporting nothing for it,
never an error (`peer_state`). Skills come from the agent cards the announcement carries, which
were verified when it was received (`colony.federation.membership.check_announcement`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colony.cognition.predictor import N_PARAMS
from colony.federation.messages import Announcement
from colony.federation.psi import PeerState
from colony.identity.events import Event

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["MAX_HISTORY", "MAX_PARAMS_B64", "BenchFacts", "ColonyFacts", "LearningFacts", "announced_facts",
           "announced_url", "decode_params", "encode_params", "own_facts", "own_state", "params_digest", "peer_state"]

log = logging.getLogger("colony.federation")

#: The parameter vector travels in the announcement only while its base64 stays under this size.
MAX_PARAMS_B64 = 4096
#: Benchmark scores kept in the announcement (newest first).
MAX_HISTORY = 8
#: Skills read from one peer's cards, at most (a card may list many; Diversity needs a set).
MAX_SKILLS = 256


class LearningFacts(BaseModel):
    """The sender's part in federated averaging."""

    model_config = ConfigDict(extra="ignore")

    on: bool = False
    round: int | None = Field(default=None, ge=0, lt=2**53)
    samples: int = Field(default=0, ge=0, lt=2**53)
    digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    params: str | None = Field(default=None, max_length=MAX_PARAMS_B64)


class BenchFacts(BaseModel):
    """The sender's latest complete benchmark score and (unix seconds, score) history, newest first."""

    model_config = ConfigDict(extra="ignore")

    score: float | None = None
    history: list[tuple[float, float]] = Field(default_factory=list, max_length=MAX_HISTORY)


class ColonyFacts(BaseModel):
    """``status.colony`` of an announcement."""

    model_config = ConfigDict(extra="ignore")

    learning: LearningFacts = Field(default_factory=LearningFacts)
    bench: BenchFacts = Field(default_factory=BenchFacts)


# -- parameters on the wire -----------------------------------------------------------------------
def params_digest(vector: np.ndarray[Any, np.dtype[np.float64]]) -> str:
    """SHA-256 of the float64 little-endian bytes: equal digests, equal weights."""
    return hashlib.sha256(np.asarray(vector, dtype="<f8").tobytes()).hexdigest()


def encode_params(vector: np.ndarray[Any, np.dtype[np.float64]]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f2").tobytes()).decode()


def decode_params(text: str | None) -> tuple[float, ...] | None:
    """The announced vector, or None when absent, malformed, of another length or not finite."""
    if not text:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 2 * N_PARAMS:
        return None
    v = np.frombuffer(raw, dtype="<f2").astype(float)
    return tuple(v.tolist()) if bool(np.all(np.isfinite(v))) else None


# -- this node ------------------------------------------------------------------------------------
def _learning(node: Node) -> LearningFacts:
    substrate = node.cognition
    predictor = substrate.predictor if substrate is not None else None
    if predictor is None:
        return LearningFacts()
    vector = predictor.parameters()
    encoded = encode_params(vector)
    return LearningFacts(on=True, round=predictor.canonical_round, samples=predictor.samples_since_round,
                         digest=params_digest(vector), params=encoded if len(encoded) <= MAX_PARAMS_B64 else None)


def _unix(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def _bench(node: Node) -> BenchFacts:
    # The benchmark sits beside federation: read its runs, nothing more.
    from colony.bench.runs import list_runs

    complete = [r for r in list_runs(node.db, 4 * MAX_HISTORY) if r["shard"] == "1/1"][:MAX_HISTORY]
    history = [(at, float(r["score"])) for r in complete
               if (at := _unix(r["created_at"])) is not None and math.isfinite(float(r["score"]))]
    return BenchFacts(score=history[0][1] if history else None, history=history)


def own_facts(node: Node) -> dict[str, Any]:
    """This node's ``status`` additions for its announcement (``{"colony": …}``)."""
    facts = ColonyFacts(learning=_learning(node), bench=_bench(node))
    return {"colony": facts.model_dump(mode="json")}


def own_state(node: Node, me: str) -> PeerState:
    """This node as Psi sees it (the same facts its announcement carries)."""
    facts = ColonyFacts.model_validate(own_facts(node)["colony"])
    skills = frozenset(s for ident in node.keyring.all() if ident.role == "agent" for s in ident.skills)
    return _state(me, facts, skills)


# -- a peer ---------------------------------------------------------------------------------------
def _announcement(stored: object) -> Announcement | None:
    if not isinstance(stored, dict):
        return None
    try:
        return Announcement.model_validate_json(Event.model_validate(stored).content)
    except ValidationError:
        return None


def announced_facts(stored: object) -> ColonyFacts:
    """The colony facts in a member's stored announcement (``federation_nodes.last_announcement``);
    empty facts when there is none or it does not parse."""
    announcement = _announcement(stored)
    if announcement is None:
        return ColonyFacts()
    try:
        return ColonyFacts.model_validate(announcement.status.get("colony", {}))
    except ValidationError as exc:
        log.info("federation: a member's colony facts do not parse: %s", exc.errors()[0]["msg"])
        return ColonyFacts()


def announced_url(stored: object) -> str | None:
    """The URL a member's latest announcement gives (it follows a restart on another port)."""
    announcement = _announcement(stored)
    return announcement.url.rstrip("/") if announcement is not None else None


def _skills(stored: object) -> frozenset[str]:
    announcement = _announcement(stored)
    found: set[str] = set()
    for card in announcement.agents if announcement is not None else []:
        try:
            listed = json.loads(card.content).get("colony", {}).get("skills", [])
        except (ValueError, AttributeError):
            continue
        if isinstance(listed, list):
            found.update(s for s in listed if isinstance(s, str))
    return frozenset(sorted(found)[:MAX_SKILLS])


def _state(node: str, facts: ColonyFacts, skills: frozenset[str]) -> PeerState:
    learning = facts.learning
    return PeerState(node=node, score=facts.bench.score,
                     weights_round=learning.round if learning.on else None,
                     weights=decode_params(learning.params) if learning.on else None, skills=skills,
                     history=tuple((t, s) for t, s in facts.bench.history))


def peer_state(pubkey: str, stored: object) -> PeerState:
    """A member as Psi sees it, from its stored announcement."""
    return _state(pubkey, announced_facts(stored), _skills(stored))
