"""The values of the memory capability: what a memory is, and what a recall returns.

A memory is never overwritten. A correction creates a new row and marks the old one
``superseded_by`` it; contradicting triples flag both memories ``needs_review``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "MAX_MEMORY_CHARS",
    "Channel",
    "ChannelHit",
    "MemoryIn",
    "MemoryItem",
    "MemoryType",
    "RecallHit",
    "RecallResult",
    "Sensitivity",
    "SourceKind",
    "Verified",
]

#: A memory is a fact, not a document: longer text should be split (or kept as a file).
MAX_MEMORY_CHARS = 64_000

MemoryType = Literal["fact", "event", "preference", "summary", "procedure"]
Verified = Literal["inferred", "user_stated", "system_verified"]
Sensitivity = Literal["public", "internal", "confidential", "restricted"]
SourceKind = Literal["session", "episode", "tool_call", "agent", "user", "import"]
Channel = Literal["keyword", "semantic", "graph"]

#: How much a verification level counts in fusion (a user's word beats an inference).
VERIFIED_WEIGHT: dict[str, float] = {"inferred": 0.95, "user_stated": 1.0, "system_verified": 1.05}


class MemoryIn(BaseModel):
    """A memory to store."""

    content: str = Field(min_length=1, max_length=MAX_MEMORY_CHARS)
    memory_type: MemoryType = "fact"
    confidence: float = Field(default=0.7, ge=0.0, le=1.0)
    verified: Verified = "inferred"
    sensitivity: Sensitivity = "internal"
    expires_at: datetime | None = None
    source_kind: SourceKind = "user"
    source_id: str | None = Field(default=None, max_length=200)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a memory cannot be blank")
        return value


class MemoryItem(MemoryIn):
    """A stored memory."""

    id: int
    created_at: str
    last_accessed_at: str | None = None
    superseded_by: int | None = None
    needs_review: bool = False
    # Relaxed on read: stored rows may predate a tighter limit.
    content: str = Field(min_length=1)


class ChannelHit(BaseModel):
    channel: Channel
    rank: int  # 1-based rank within the channel
    score: float  # the channel's own score (BM25, cosine, PageRank mass)


class RecallHit(BaseModel):
    memory: MemoryItem
    score: float  # fused score
    channels: list[ChannelHit]


class RecallResult(BaseModel):
    query: str
    hits: list[RecallHit]
    expanded_entities: list[str] = Field(default_factory=list)
    #: Channels that could not run, with the reason (e.g. the embedding model is not installed).
    channels_down: dict[str, str] = Field(default_factory=dict)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    #: Each channel's best probability of relevance for this query (see `colony.memory._calibrated`),
    #: and the keyword channel's coverage of the query (`colony.memory._confidence`).
    channel_weights: dict[str, float] = Field(default_factory=dict)
    keyword_coverage: float | None = None
    #: The best memory's calibrated probability of being relevant (the noisy-OR of its channels').
    relevance: float = 0.0
    #: True when nothing stored looks relevant (``relevance`` below the calibrated threshold): the
    #: hits are the nearest noise, and the agent's context leaves them out.
    abstained: bool = False
