"""FTS5's ``bm25()``, for an engine that finds the matches but does not score them the same way.

The fusion calibration (``data/fusion-v2.json``) was fitted on SQLite's keyword scores: the
keyword channel's *coverage* feature divides the best BM25 score by the sum of the query terms'
IDFs (`colony.memory._confidence.keyword_coverage`), so a score on another scale (PostgreSQL's
``ts_rank`` is one) would shift every keyword probability. PostgreSQL's keyword channel therefore
reads the term statistics FTS5 reads — rows, total tokens, each phrase's document count, each
row's token count and phrase positions — and scores them here with FTS5's formula
(``fts5_aux.c``: k1 = 1.2, b = 0.75, an IDF at or below zero clamped to 1e-6).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["B", "K1", "idf", "instances", "score"]  # noqa: RUF022 - the constants first

K1 = 1.2
B = 0.75


def idf(rows: float, hits: int) -> float:
    """FTS5's IDF of a phrase that ``hits`` of ``rows`` rows hold."""
    value = math.log((rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else 1e-6


def instances(phrase: Sequence[str], positions: Mapping[str, Sequence[int]]) -> int:
    """How many times the tokens of ``phrase`` follow each other in a row, from its token positions."""
    if not phrase:
        return 0
    first = positions.get(phrase[0], ())
    if len(phrase) == 1:
        return len(first)
    later = [frozenset(positions.get(token, ())) for token in phrase[1:]]
    return sum(1 for p in first if all(p + k in later[k - 1] for k in range(1, len(phrase))))


def score(frequencies: Sequence[int], idfs: Sequence[float], length: int, avgdl: float) -> float:
    """A row's BM25 (positive; FTS5 returns its negation) from its phrase frequencies and length."""
    norm = K1 * (1.0 - B + B * length / avgdl)
    return sum(w * (f * (K1 + 1.0)) / (f + norm) for f, w in zip(frequencies, idfs, strict=True))
