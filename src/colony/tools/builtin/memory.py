"""The agent's memory tools: store a fact, recall what is known.

They work on the node's `colony.memory.Memory`, handed to tools as ``ToolContext.memory``.
Stored facts are marked ``inferred`` (the agent said so) unless the agent says the user stated
them. They go through the same middleware as every tool; both are allowed by default because a
store only adds (nothing is ever overwritten) and a recall only reads.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from colony.errors import ToolError
from colony.memory.models import MAX_MEMORY_CHARS, MemoryIn
from colony.tools.registry import ToolContext, tool

__all__ = ["memory_recall", "memory_store"]


def _memory(ctx: ToolContext, name: str) -> Any:
    if ctx.memory is None:
        raise ToolError(name, "This node has no memory store; answer without it.")
    return ctx.memory


class MemoryStoreArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=MAX_MEMORY_CHARS,
                         description="One self-contained fact, preference or procedure, in a full sentence.")
    memory_type: Literal["fact", "event", "preference", "summary", "procedure"] = Field(
        default="fact", description="What kind of memory this is.")
    confidence: float = Field(default=0.7, ge=0, le=1, description="How sure you are, 0 to 1.")
    user_stated: bool = Field(default=False, description="True when the user said it directly.")


@tool(effect="write")
async def memory_store(ctx: ToolContext, args: MemoryStoreArgs) -> str:
    """Remember a fact for later sessions (one fact per call, stated in a full sentence)."""
    memory = _memory(ctx, "memory_store")
    report = memory.ingest([MemoryIn(
        content=args.content, memory_type=args.memory_type, confidence=args.confidence,
        verified="user_stated" if args.user_stated else "inferred", source_kind="session",
        source_id=ctx.session_id,
    )])
    note = f"stored memory {report.ids[0]}"
    if report.unembedded:
        note += f" (keyword and graph only for now: {report.embed_error})"
    if report.flagged:
        note += f"; it contradicts memory {report.flagged[0][1]}, both are flagged for review"
    return note


class MemoryRecallArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=2000, description="What to look for, in plain words.")
    k: int = Field(default=5, ge=1, le=20, description="How many memories to return.")


@tool()
async def memory_recall(ctx: ToolContext, args: MemoryRecallArgs) -> str:
    """Search long-term memory (keywords, meaning and related entities) and return the best matches."""
    memory = _memory(ctx, "memory_recall")
    result = memory.recall(args.query, k=args.k)
    items = [
        {"id": h.memory.id, "content": h.memory.content, "type": h.memory.memory_type,
         "confidence": round(h.memory.confidence, 2), "found_by": [c.channel for c in h.channels]}
        for h in result.hits if h.memory.sensitivity != "restricted"
    ]
    if not items:
        return "No memories match."
    return json.dumps(items, ensure_ascii=False, indent=1)
