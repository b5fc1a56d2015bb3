"""Fusing the three recall channels into one ranking, and fitting it into a context budget.

Reciprocal rank fusion: each channel contributes ``weight / (k + rank)`` for every memory it
found, so agreement between channels counts more than any one channel's raw scores (BM25,
cosine and PageRank mass are not comparable). The fused score is then multiplied by:

- a confidence factor, ``0.9 + 0.2 * confidence`` — a doubtful memory still surfaces,
  but below an equally relevant sure one;
- the verification weight (`VERIFIED_WEIGHT`): a user's statement beats an inference;
- freshness, ``max(FRESHNESS_FLOOR, exp(-rate * age_days))`` — old memories fade, never vanish.

The factors are deliberately gentle (together roughly 0.75–1.15): with k = 60, rank 1 and rank
10 differ by only ~13 % in RRF, so strong factors would override relevance instead of
breaking near-ties — the retrieval eval showed exactly that before they were narrowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from colony.memory.models import VERIFIED_WEIGHT, Channel, ChannelHit
from colony.store import Row

__all__ = [
    "FRESHNESS_FLOOR",
    "PROTECTED",
    "RRF_K",
    "age_days",
    "compress",
    "consensus_first",
    "fuse",
    "protect_top",
]

#: Small k: with three channels that each know different things, the top of each list matters
#: far more than agreement lower down (k = 60 let two channels' mediocre matches outvote a
#: third channel's certain one; the retrieval eval chose k = 2).
RRF_K = 2
FRESHNESS_FLOOR = 0.85
DEFAULT_WEIGHTS: dict[str, float] = {"keyword": 1.0, "semantic": 1.0, "graph": 1.5}
#: Channels whose best answer always keeps a place in the fused top k: the channels that find
#: what no other channel can (multi-hop answers, paraphrases).
PROTECTED: tuple[str, ...] = ("graph", "semantic")


def age_days(created_at: str, now: datetime) -> float:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (now - created).total_seconds() / 86_400)


def fuse(
    ranked: Mapping[Channel, Sequence[tuple[int, float]]],
    rows: Mapping[int, Row],
    *,
    freshness_per_day: float,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    k: int = RRF_K,
    now: datetime | None = None,
) -> list[tuple[int, float, list[ChannelHit]]]:
    """Rank memory ids by weighted RRF × confidence × verification × freshness.

    Args:
        ranked: per channel, ``(memory_id, channel_score)`` best first.
        rows: the memory rows for every id that appears (ids without a row are dropped:
            they were forgotten or expired between the channel query and now).
    """
    now = now or datetime.now(UTC)
    base: dict[int, float] = {}
    hits: dict[int, list[ChannelHit]] = {}
    for channel, results in ranked.items():
        w = weights.get(channel, 1.0)
        for rank, (mid, score) in enumerate(results, start=1):
            if mid not in rows:
                continue
            base[mid] = base.get(mid, 0.0) + w / (k + rank)
            hits.setdefault(mid, []).append(ChannelHit(channel=channel, rank=rank, score=round(float(score), 6)))
    fused = []
    for mid, value in base.items():
        row = rows[mid]
        confidence = 0.9 + 0.2 * float(row["confidence"])
        verified = VERIFIED_WEIGHT.get(str(row["verified"]), 1.0)
        fresh = max(FRESHNESS_FLOOR, math.exp(-freshness_per_day * age_days(str(row["created_at"]), now)))
        fused.append((mid, value * confidence * verified * fresh, hits[mid]))
    fused.sort(key=lambda t: (-t[1], t[0]))
    return fused


def protect_top(
    fused: list[tuple[int, float, list[ChannelHit]]],
    k: int,
    protected: Mapping[str, int] | Sequence[str] = PROTECTED,
) -> list[tuple[int, float, list[ChannelHit]]]:
    """Make sure each protected channel's best answers are in the first ``k``.

    Agreement between two channels can crowd out the one channel that actually knows the
    answer. ``protected`` maps a channel to how many of its top answers keep a place (a plain
    sequence means one each); a protected answer takes the last place not held by another.
    """
    depth = dict(protected) if isinstance(protected, Mapping) else {c: 1 for c in protected}
    head = fused[:k]

    def is_protected(entry: tuple[int, float, list[ChannelHit]]) -> bool:
        return any(h.channel in depth and h.rank <= depth[h.channel] for h in entry[2])

    for rank in range(1, max(depth.values(), default=0) + 1):
        for channel, n in depth.items():
            if rank > n:
                continue
            best = next((f for f in fused if any(h.channel == channel and h.rank == rank for h in f[2])), None)
            if best is None or best in head:
                continue
            for i in range(len(head) - 1, -1, -1):
                if not is_protected(head[i]):
                    head[i] = best
                    break
    return head + [f for f in fused if f not in head]  # displaced entries follow, in order


def consensus_first(
    fused: list[tuple[int, float, list[ChannelHit]]], channels: Sequence[str] = ("keyword", "semantic")
) -> list[tuple[int, float, list[ChannelHit]]]:
    """Put first the memory that every one of ``channels`` ranks first, if there is one.

    Words and meaning are independent views of a memory; when both pick the same memory as their
    best match, no other evidence is as strong — a confident graph (weighted up for relation
    questions) must not push it down the list.
    """
    wanted = set(channels)
    for i, entry in enumerate(fused):
        if wanted <= {h.channel for h in entry[2] if h.rank == 1}:
            return [entry, *fused[:i], *fused[i + 1:]] if i else fused
    return fused


def compress(texts: Sequence[str], budget_chars: int) -> list[str]:
    """Keep whole memories in order while they fit; shorten the one that crosses the budget."""
    out: list[str] = []
    used = 0
    for text in texts:
        text = " ".join(text.split())
        room = budget_chars - used
        if room <= 40:
            break
        if len(text) > room:
            out.append(text[: room - 1].rstrip() + "…")
            break
        out.append(text)
        used += len(text) + 3  # the "- " bullet and newline the context adds
    return out
