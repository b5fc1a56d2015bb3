"""Query-level signals the calibrated fusion reads (`colony.memory._calibrated`).

They come from the query and the channel's own results, never from labels:

- **Exact identifiers.** BM25 scores tokens, but ``ledger==8.4.5`` or ``INC-98392`` is one thing:
  a memory containing the identifier verbatim is strong evidence, so those results go first in
  the keyword ranking, and the fusion model sees the fact as a feature.
- **Keyword coverage.** The top BM25 score divided by the score a memory matching every query
  term once would get (the sum of the terms' IDF). Near 1 the keyword match says what the question
  says; far below, it matched a word or two by chance — the model weighs it accordingly.
- **Graph confidence** is decided by the graph channel itself (its best answer carries the relation
  the question asks about); see `Memory._graph`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from colony.store import Row

__all__ = ["exact_first", "identifiers", "keyword_coverage"]

_CHUNK = re.compile(r"[^\s\"'`()\[\]{}<>,;!?]+")


def identifiers(query: str) -> list[str]:
    """Identifier-like chunks of the query, lower-cased: ``INC-98392``, ``pgshim==9.4.1``, ``E1783``.

    A chunk qualifies when it mixes letters and digits, or joins word characters with the
    punctuation identifiers use (``=``, ``_``, ``/``, ``:``, inner ``.`` or ``-``). Plain words and
    bare numbers do not: "December" or "2024" are better served by BM25's own weighting.
    """
    out: list[str] = []
    for raw in _CHUNK.findall(query[:2000]):
        chunk = raw.strip(".:-=/").lower()
        if len(chunk) < 3:
            continue
        mixed = any(c.isdigit() for c in chunk) and any(c.isalpha() for c in chunk)
        joined = len(chunk) >= 4 and re.search(r"[=_/:]|\w[.-]\w", chunk) is not None
        if (mixed or joined) and chunk not in out:
            out.append(chunk)
    return out


def exact_first(
    ranked: Sequence[tuple[int, float]], rows: Mapping[int, Row], idents: Sequence[str]
) -> tuple[list[tuple[int, float]], int]:
    """Move the results whose text contains one of ``idents`` verbatim to the front (stable).

    Returns the reordered ranking and how many exact matches lead it.
    """
    if not idents:
        return list(ranked), 0
    exact: list[tuple[int, float]] = []
    rest: list[tuple[int, float]] = []
    for mid, score in ranked:
        row = rows.get(mid)
        text = str(row["content"]).lower() if row is not None else ""
        (exact if text and any(i in text for i in idents) else rest).append((mid, score))
    return exact + rest, len(exact)


def keyword_coverage(top_score: float, doc_freqs: Mapping[str, int], total: int) -> float:
    """The best BM25 score as a share of a full match: roughly the query's information it covers.

    FTS5 scores a term ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen))``; a memory of
    average length holding each term once scores the sum of the IDFs, the reference used here.
    ``doc_freqs`` has every query token, 0 for those no memory contains: such a word is a sign the
    question is worded differently from anything stored (a paraphrase), so it counts in full —
    keywords cannot find what is said in other words.
    """
    if top_score <= 0 or total <= 0:
        return 0.0
    # The count and the frequencies are read separately, so writers in between can make a term's
    # frequency exceed the count: clamp rather than take the log of a negative number.
    reference = sum(max(1e-6, math.log(max(1e-9, (total - n + 0.5) / (n + 0.5)))) for n in doc_freqs.values())
    return top_score / reference if reference > 0 else 0.0
