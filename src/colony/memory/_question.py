"""What a multi-hop question asks beyond the entity it starts from: its *remaining* words.

A walk from the question's entity reaches many memories through one link, and the link alone
cannot always tell them apart: several continuations can score exactly alike (one link reaching
a site's opening times, its wifi password and where it is). The question's other words — its
content words that the seed entities do not consume ("…who signs off the *budget*…") — are the
fairest way to order such ties: by how much of their weight, an IDF from the keyword index's
document frequencies, a path's memories hold (:meth:`Remainder.covers`), rather than by the
order the store returned the memories in. :data:`Remainder.asked` also keeps every word of the
question, so the walk can tell what the question names itself from what a path adds.

Words are compared by a crude stem (their first :data:`STEM_CHARS` letters), so "garaged" meets
"garage". As a weight on every path rather than a tie-break, the same overlap (and a variant
that favoured the link a remaining word sits beside, "Efua (cousin)") helped on the tuning
corpora and not on the validation ones (docs/benchmarks.md, issue 18): questions paraphrase
what answers them, so the lexical signal only orders what the walk cannot otherwise tell apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from colony.memory._relations import STOPWORDS
from colony.memory.store import MemoryStore

__all__ = ["STEM_CHARS", "Remainder", "remainder", "stem", "words_of"]

STEM_CHARS = 5  # "councillor"/"councillors", "garage"/"garaged", "employs"/"employer"
MAX_TERMS = 24
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")


def stem(word: str) -> str:
    """A crude stem: lower case, possessive dropped, the first :data:`STEM_CHARS` letters."""
    word = word.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    return word[:STEM_CHARS]


def words_of(text: str) -> list[str]:
    """The lower-case words of ``text`` in order, possessives dropped ("Kiwi's" → "kiwi")."""
    out = []
    for raw in _WORD.findall(text[:2000].lower().replace("’", "'")):
        out.append(raw[:-2] if raw.endswith("'s") else raw)
    return out


@dataclass(frozen=True, slots=True)
class Remainder:
    """The question's remaining words as stems, each with its share of their total IDF weight."""

    weights: dict[str, float] = field(default_factory=dict)
    #: Every lower-case word of the question, its entities' included.
    asked: frozenset[str] = frozenset()

    def covers(self, words: Iterable[str]) -> float:
        """The share, in [0, 1], of the remaining words' weight that ``words`` hold."""
        if not self.weights:
            return 0.0
        stems = {stem(w) for w in words}
        return sum(weight for s, weight in self.weights.items() if s in stems)


def remainder(store: MemoryStore, query: str, consumed: Collection[str], total: int) -> Remainder:
    """The remaining words of ``query``: content words outside the ``consumed`` entity names,
    weighted by IDF over the store's ``total`` memories."""
    used = {stem(w) for name in consumed for w in name.split()}
    asked = frozenset(words_of(query))
    terms: dict[str, str] = {}
    for word in words_of(query):
        if word in STOPWORDS or len(word) < 3 or word.isdigit():
            continue
        s = stem(word)
        if s not in used and s not in terms.values():
            terms[word] = s
        if len(terms) >= MAX_TERMS:
            break
    if not terms:
        return Remainder(asked=asked)
    df = store.doc_frequencies(list(terms))
    raw: dict[str, float] = {}
    for word, s in terms.items():
        # An unseen inflection ("garaged") still counts at a rare word's weight: its stem may match.
        raw[s] = max(raw.get(s, 0.0), math.log1p(total / (1 + df.get(word, 0))))
    norm = sum(raw.values())
    return Remainder({s: w / norm for s, w in raw.items()} if norm > 0 else {}, asked)
