"""Which relations a question is asking about, from cue words — rule-based and cheap.

The graph walk finds what is *connected* to the question's entities; the relation the question
asks about ("where …?" → located/hosted; "who should I escalate to …?" → manages/leads) tells
which of those connected facts answers it. The cues cover general relation families found in
any organisation's knowledge (place, dependency, responsibility, membership), not one corpus.
"""

from __future__ import annotations

import re

__all__ = ["relation_family", "relation_intent"]

_FAMILIES: list[tuple[re.Pattern[str], frozenset[str]]] = [
    (re.compile(r"\b(where|located|location|city|country|region|datacent(er|re)s?|data cent(er|re)|physically|site|based|hosted|lives?)\b"),
     frozenset({"located_in", "lives_in", "based_in", "hosted_on", "runs_on", "deployed_to", "born_in", "comes_from"})),
    (re.compile(r"\b(depends?|dependen\w*|rel(y|ies|ying) on|requires?|required|needs?|pulls? in|transitive\w*|imports?|built (on|with)|uses?|using|"
                r"beneath|underneath|underlying|lower[- ]level|under the hood)\b"),
     frozenset({"depends_on", "relies_on", "requires", "needs", "imports", "uses", "built_on", "built_with",
                "includes", "consists_of", "based_on", "calls", "consumes"})),
    # People in charge. Ownership of a thing (owns, maintains) is a step on the way to the person,
    # not the answer, so it is not part of this family.
    (re.compile(r"\b(escalat\w*|responsible|accountab\w*|in charge|final say|manag\w*|leads?|led by|boss|supervis\w*|"
                r"one[- ]on[- ]ones?|1:1s?|reports? to|line manager|who runs)\b"),
     frozenset({"manages", "leads", "responsible_for", "in_charge_of", "reports_to", "mentors"})),
    (re.compile(r"\b(department|division|group|org|organi[sz]ation|belongs?|part of|member|fall(s)? under|under which|unit)\b"),
     frozenset({"belongs_to", "part_of", "member_of", "reports_to", "works_for", "works_at", "works_on",
                "subsidiary_of"})),
]


def relation_intent(query: str) -> frozenset[str]:
    """The relations the query's cue words point at (empty when none do)."""
    text = query.lower()[:2000]
    found: set[str] = set()
    for pattern, relations in _FAMILIES:
        if pattern.search(text):
            found |= relations
    return frozenset(found)


_FAMILY_OF: dict[str, str] = {}
for _index, (_pattern, _relations) in enumerate(_FAMILIES):
    for _rel in sorted(_relations):
        _FAMILY_OF.setdefault(_rel, f"family{_index}")


def relation_family(relation: str) -> str:
    """A name shared by relations that say the same kind of thing (``imports`` and ``built_on``
    are both dependencies); a relation outside every family is its own family."""
    return _FAMILY_OF.get(relation, relation)
