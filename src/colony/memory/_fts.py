"""Turning any user string into safe keyword query terms (and an FTS5 query).

User text is never passed to a query parser as-is: FTS5 syntax (quotes, ``NEAR``, ``*``, ``:``,
parentheses, ``AND``/``OR``/``NOT``) or ``tsquery`` operators would raise errors or change the
meaning. We keep only word characters, so every term is a bare token and every multi-token chunk
(an identifier such as ``INC-48213`` or ``db-07.eu-west``) becomes a phrase of bare tokens
(`to_phrases`); each engine quotes them its own way (`to_match` for FTS5). Nothing the user
types can reach the query parser as syntax.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from colony.memory.store import Phrase
from colony.store.memory import fts5_match

__all__ = ["STOPWORDS", "query_tokens", "terms_of", "to_match", "to_phrases"]

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 24

STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "then", "else", "of", "to", "in", "on", "at", "by", "for", "with", "from", "into", "onto", "about", "as", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "done", "have", "has", "had", "having", "i", "me", "my", "we", "our", "you", "your", "he", "she", "it", "its", "they", "them", "their", "this", "that", "these", "those", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "not", "no", "nor", "so", "than", "too", "very", "can", "could", "should", "would", "will", "shall", "may", "might", "must", "just", "also", "only", "any", "all", "some", "such", "there", "here", "out", "up", "down", "over", "under", "again", "further", "once", "near", "please", "tell", "show", "give", "know", "find", "get", "let", "lets", "s", "t"]
)


def terms_of(query: str) -> list[str]:
    """The single-token, non-stopword terms a query would search for (to look up their df)."""
    out: list[str] = []
    for chunk in query[:4000].split():
        tokens = [t for t in _WORD.findall(chunk.lower().replace("_", " ")) if any(c.isalnum() for c in t)]
        if len(tokens) == 1 and tokens[0] not in STOPWORDS and tokens[0] not in out:
            out.append(tokens[0])
    return out


def query_tokens(query: str) -> list[str]:
    """Every distinct non-stopword token FTS5 (unicode61) indexes for the query, multi-token chunks
    included — the words whose document frequencies measure how much of the query a match covers."""
    out: list[str] = []
    for token in _WORD.findall(query[:4000].lower().replace("_", " ")):
        if any(c.isalnum() for c in token) and token not in STOPWORDS and token not in out:
            out.append(token)
    return out


def to_phrases(query: str, phrases: Sequence[str] = (), *, skip: frozenset[str] = frozenset()) -> list[Phrase]:
    """The query's terms and the extra phrases as token tuples, in order, without duplicates.

    ``skip`` drops single terms (the caller passes those too common to matter: a term in a
    large share of all memories adds little to BM25 and most of the cost of an OR query).
    Multi-token chunks (identifiers) stay phrases of at most eight tokens.
    """
    out: list[Phrase] = []
    for chunk in [*query[:4000].split(), *phrases]:
        # unicode61 splits on "_" too; keep only what it will index as a token.
        tokens = [t for t in _WORD.findall(chunk.lower().replace("_", " ")) if any(c.isalnum() for c in t)]
        if not tokens:
            continue
        if len(tokens) == 1 and (tokens[0] in STOPWORDS or tokens[0] in skip):
            continue
        phrase = tuple(tokens[:8])
        if phrase not in out:
            out.append(phrase)
        if len(out) >= MAX_TERMS:
            break
    return out


def to_match(query: str, phrases: Sequence[str] = (), *, skip: frozenset[str] = frozenset()) -> str | None:
    """An FTS5 MATCH expression OR-ing the query's terms and the extra phrases; None if empty."""
    return fts5_match(to_phrases(query, phrases, skip=skip))
