"""Calibrated fusion: each channel's evidence turned into a probability of relevance, combined.

Why not weighted rank fusion with hand-set rules: the rules (coverage ramps, "semantic counts
double", protected tops) were tuned to one generator's sentences and did not carry to a corpus
written by someone else — fused recall fell *below* the semantic channel alone on paraphrases.
Here every channel is treated the same way, from signals any corpus has:

- where the memory ranks in the channel (log rank), its score relative to the channel's best,
  how far the channel's best stands out from the rest of its list (a clear winner versus a flat
  list of near-equal matches), and one or two channel-specific signals: the keyword channel's
  coverage of the query and whether the memory holds the query's identifier verbatim; the raw
  cosine for the semantic channel; the graph's own confidence;
- what the query looks like to all channels (the same for every hit): the keyword coverage, the
  graph's confidence, whether the query names an identifier, the best cosine — so a channel's
  model can tell "a keyword match on a relation question" from "a keyword match on a lookup";
- a small logistic model per channel maps them to P(relevant | this channel's evidence). The
  coefficients are fitted by ``scripts/fit_memory_fusion.py`` on corpora of the first eval
  generator and shipped in ``data/fusion-v2.json``; the test command checks them on corpora of
  the second, independent generator, which the fit never saw;
- a memory's relevance is the noisy-OR of its channels' probabilities: one sure channel is enough,
  agreement adds, and a channel that knows nothing (low probabilities everywhere) cannot push
  another channel's sure answer down — the failure of the old fusion;
- the best memory's probability is the recall's ``relevance``; below the fitted threshold the
  recall says it found nothing relevant (``abstained``) instead of offering the nearest noise;
- below a second threshold (``fallback_below``, chosen on the *second* generator's corpora, not
  the ones the coefficients came from) the two channels that can find what shares no word with
  the question lead, interleaved by rank (`fallback_order`): the semantic channel (a paraphrase)
  and the graph (a chain whose later memories name nothing the question names). Splitting the
  fit this way is what carried: a threshold chosen on the coefficients' own corpora sat too high
  for a corpus the model is less sure of. The graph shares the lead since a multi-hop question
  is the other kind the model is unsure of: with the semantic channel alone leading, those
  questions lost the graph's path to the nearest meanings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from colony.memory.models import Channel

__all__ = ["FEATURES", "Calibration", "QuerySignals", "channel_features", "fallback_order", "fuse_calibrated",
           "interleave", "load_calibration"]

#: The features of one hit in one channel, in model order (the bias first).
_CONTEXT = ("q_coverage", "q_graph_confident", "q_identifier", "q_semantic_top")
FEATURES: dict[str, tuple[str, ...]] = {
    "keyword": ("bias", "log_rank", "rel_score", "separation", "coverage", "exact", *_CONTEXT),
    "semantic": ("bias", "log_rank", "rel_score", "separation", "cosine", "cosine_gap", *_CONTEXT),
    "graph": ("bias", "log_rank", "rel_score", "separation", "confident", "hit_share", *_CONTEXT),
}
CALIBRATION_FILE = Path(__file__).parent / "data" / "fusion-v2.json"
#: Candidates per channel the model scores (deeper ranks carry almost no probability).
DEPTH = 30


@dataclass(frozen=True)
class QuerySignals:
    """What the channels said about the query as a whole."""

    coverage: float = 0.0
    exact_ids: frozenset[int] = frozenset()
    graph_confident: bool = False
    #: The query names an identifier (whether or not a memory holds it).
    has_identifier: bool = False
    #: The semantic channel's best cosine: how close anything stored is in meaning.
    semantic_top: float = 0.0


@dataclass(frozen=True)
class Calibration:
    coefficients: dict[str, tuple[float, ...]]
    abstain_below: float
    meta: dict[str, Any]
    #: Below this best relevance the fused order is noise among unlikely candidates, and the
    #: semantic channel's own order is used (see `fallback_order`); 0 turns the fallback off.
    fallback_below: float = 0.0


@lru_cache(maxsize=4)
def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration:
    data = json.loads(path.read_text(encoding="utf-8"))
    coefficients = {c: tuple(float(x) for x in data["coefficients"][c]) for c in FEATURES}
    for channel, names in FEATURES.items():
        if len(coefficients[channel]) != len(names):
            raise ValueError(f"{path}: {channel} has {len(coefficients[channel])} coefficients, wants {len(names)}")
    return Calibration(coefficients=coefficients, abstain_below=float(data["abstain_below"]),
                       meta=dict(data.get("meta", {})), fallback_below=float(data.get("fallback_below", 0.0)))


def channel_features(channel: str, results: Sequence[tuple[int, float]],
                     signals: QuerySignals) -> list[tuple[int, list[float]]]:
    """(memory id, feature vector) for the first `DEPTH` results of one channel, best first."""
    top = results[:DEPTH]
    if not top:
        return []
    scores = [float(s) for _, s in top]
    best = scores[0]
    rest = scores[1:10]
    mean_rest = sum(rest) / len(rest) if rest else 0.0
    scale = abs(best) if abs(best) > 1e-9 else 1.0
    separation = max(-1.0, min(1.0, (best - mean_rest) / scale))
    median = sorted(scores)[len(scores) // 2]
    # What the other channels say about the query: a keyword match means little when the graph
    # knows the question is about a relation, or when the question is worded unlike anything stored.
    context = [min(1.5, signals.coverage), 1.0 if signals.graph_confident else 0.0,
               1.0 if signals.has_identifier else 0.0, signals.semantic_top]
    out: list[tuple[int, list[float]]] = []
    for rank, (mid, score) in enumerate(top, start=1):
        rel = max(0.0, min(1.0, float(score) / scale)) if best > 0 else 0.0
        common = [1.0, math.log(rank), rel, separation]
        if channel == "keyword":
            extra = [min(1.5, signals.coverage), 1.0 if mid in signals.exact_ids else 0.0]
        elif channel == "semantic":
            extra = [float(score), float(score) - median]
        else:
            extra = [1.0 if signals.graph_confident else 0.0, float(score) / (sum(scores) or 1.0)]
        out.append((mid, common + extra + context))
    return out


def _probability(coefficients: Sequence[float], x: Sequence[float]) -> float:
    z = sum(w * v for w, v in zip(coefficients, x, strict=True))
    z = max(-30.0, min(30.0, z))
    return 1.0 / (1.0 + math.exp(-z))


def fuse_calibrated(ranked: Mapping[Channel, Sequence[tuple[int, float]]], signals: QuerySignals,
                    calibration: Calibration) -> tuple[list[tuple[int, float, dict[str, float]]], float]:
    """Memories by noisy-OR relevance, with each channel's probability; and the best relevance."""
    misses: dict[int, float] = {}
    per_channel: dict[int, dict[str, float]] = {}
    for channel, results in ranked.items():
        coefficients = calibration.coefficients.get(channel)
        if coefficients is None:
            continue
        for mid, x in channel_features(channel, results, signals):
            p = _probability(coefficients, x)
            misses[mid] = misses.get(mid, 1.0) * (1.0 - p)
            per_channel.setdefault(mid, {})[channel] = p
    fused = [(mid, 1.0 - miss, per_channel[mid]) for mid, miss in misses.items()]
    fused.sort(key=lambda t: (-t[1], t[0]))
    return fused, (fused[0][1] if fused else 0.0)


def fallback_order(ranked: Mapping[Channel, Sequence[tuple[int, float]]],
                   fused: Sequence[tuple[int, float, dict[str, float]]], relevance: float,
                   calibration: Calibration) -> list[tuple[int, float, dict[str, float]]] | None:
    """The semantic and graph channels' orders, interleaved, when nothing is likely relevant; None
    when the fused order stands.

    When the best memory's calibrated relevance is low, every candidate is unlikely and their
    fused order mixes weak keyword matches on common words, chance graph links and the nearest
    meanings. Two channels rank sensibly a question worded unlike what answers it: the semantic
    channel (a paraphrase) and the graph (a chain: the memories after its first name nothing the
    question names). Neither can tell which kind of question it is, so they lead together, rank
    by rank (the semantic channel's first, then the graph's first, …; a memory both found comes
    once): whichever channel holds the answer keeps its top ranks in the list, with no weight to
    tune. Without a graph path the semantic channel leads alone; the rest follow in fused order.
    Above ``fallback_below`` (fitted with the calibration) the fusion decides.
    """
    semantic = ranked.get("semantic")
    if not semantic or relevance >= calibration.fallback_below:
        return None
    by_id = {mid: (mid, p, probs) for mid, p, probs in fused}
    lead = [by_id[mid] for mid in interleave([semantic, ranked.get("graph", [])]) if mid in by_id]
    placed = {mid for mid, _, _ in lead}
    return lead + [hit for hit in fused if hit[0] not in placed]


def interleave(rankings: Sequence[Sequence[tuple[int, float]]]) -> list[int]:
    """Memory ids taken rank by rank from each ranking in turn, each id once."""
    out: dict[int, None] = {}
    for rank in range(max((len(r) for r in rankings), default=0)):
        for ranking in rankings:
            if rank < len(ranking):
                out.setdefault(ranking[rank][0], None)
    return list(out)
