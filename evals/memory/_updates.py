"""Knowledge updates, temporal questions and abstention: the machinery both generators share.

What real memory benchmarks ask beyond retrieval (LongMemEval's categories):

- ``knowledge_update``: a fact is stored, then corrected (once or twice). The correction is a
  memory row with ``supersedes`` set, which the runner records with `Memory.correct`, so the
  store itself knows the old row is history. The question asks the *current* value; only the
  latest version is relevant, and the stale versions are listed so the report can tell whether
  one ever ranked above it.
- ``temporal``: "where was X before it moved?" The relevant memory is the *old*, superseded one:
  only a recall that can see history can answer.
- ``abstention``: a question about something no memory mentions (an unknown person, place,
  system or identifier, or a topic far from the corpus). Nothing is relevant; a good recall says
  so instead of returning the nearest noise. Each such question lists the ``absent`` terms it
  hinges on, and the generator checks that no memory contains them.

The families (subjects, values, sentence and question templates) are each generator's own; this
module only turns them into rows, so both generators behave the same way with different words.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evals.memory._corpus import absent_everywhere

__all__ = ["Abstainer", "UpdateFamily", "history_memory_count", "make_abstentions", "make_updates"]

#: Stores a memory (text, memory type, key of the memory it corrects or None) and returns its key.
AddMemory = Callable[[str, str, str | None], str]


@dataclass(frozen=True)
class UpdateFamily:
    """A kind of fact that changes over time, e.g. where a team's offsite is held.

    Templates take ``{s}`` (the subject, e.g. "the Falcon team offsite"), ``{S}`` (the same with
    a capital first letter), ``{x}`` (the bare filler, e.g. "Falcon") and ``{v}`` (the value).
    """

    key: str
    slot: str  # which filler list the subject draws from ("team", "district", ...)
    subject: str  # with {x}
    values: tuple[str, ...]
    stated: tuple[str, ...]  # the first version
    corrected: tuple[str, ...]  # every later version
    current: tuple[str, ...]  # questions about the value now
    past: tuple[str, ...]  # questions about the value before the (last) change
    memory_type: str = "fact"
    #: "up"/"down": versions move one way, so "before the price rise" stays true.
    order: Literal["any", "up", "down"] = "any"
    #: Draw values from this filler list (e.g. the world's staff) instead of `values`.
    value_slot: str | None = None


def _fill(template: str, subject: str, filler: str, value: str = "") -> str:
    return template.format(s=subject, S=subject[:1].upper() + subject[1:], x=filler, v=value)


def _versions(rng: random.Random, family: UpdateFamily, n: int, fillers: dict[str, list[str]]) -> list[str]:
    pool = fillers[family.value_slot] if family.value_slot else list(family.values)
    values = rng.sample(pool, n)
    if family.order != "any":  # values are listed in increasing order
        values.sort(key=pool.index, reverse=family.order == "down")
    return values


def history_memory_count(n_update: int, n_temporal: int, n_unasked: int) -> int:
    """How many memories `make_updates` stores: fixed in advance, so callers can size a corpus."""
    return sum(3 if i % 3 == 2 else 2 for i in range(n_update)) + 2 * n_temporal + 2 * n_unasked


def make_updates(rng: random.Random, families: Sequence[UpdateFamily], fillers: dict[str, list[str]],
                 add: AddMemory, *, n_update: int, n_temporal: int, n_unasked: int) -> list[dict[str, Any]]:
    """Store fact histories and return their questions (``knowledge_update`` and ``temporal``).

    Every third knowledge update is corrected twice, the others once; a temporal fact is
    corrected once, so "before the change" names exactly one version. `n_unasked` histories are
    stored without a question, as distractors that also carry corrections.
    """
    # Round-robin over the families (each with its own shuffled fillers), so a family with many
    # possible subjects (every service) does not crowd out one with few (every team).
    pools = [(f, rng.sample(fillers.get(f.slot, []), len(fillers.get(f.slot, [])))) for f in families]
    rng.shuffle(pools)
    subjects: list[tuple[UpdateFamily, str]] = []
    while any(pool for _, pool in pools):
        subjects += [(f, pool.pop()) for f, pool in pools if pool]
    needed = n_update + n_temporal + n_unasked
    if len(subjects) < needed:
        raise ValueError(f"only {len(subjects)} update subjects for {needed} fact histories; use more memories")
    plan: list[tuple[str, int]] = ([("knowledge_update", 3 if i % 3 == 2 else 2) for i in range(n_update)]
                                   + [("temporal", 2)] * n_temporal + [("unasked", 2)] * n_unasked)
    questions: list[dict[str, Any]] = []
    for (qtype, n_versions), (family, filler) in zip(plan, subjects, strict=False):
        subject = family.subject.format(x=filler)
        values = _versions(rng, family, n_versions, fillers)
        keys: list[str] = []
        for i, value in enumerate(values):
            templates = family.stated if i == 0 else family.corrected
            text = _fill(rng.choice(templates), subject, filler, value)
            keys.append(add(text, family.memory_type, keys[-1] if keys else None))
        if qtype == "knowledge_update":
            question = _fill(rng.choice(family.current), subject, filler)
            questions.append({"type": qtype, "question": question, "relevant": [keys[-1]], "superseded": keys[:-1]})
        elif qtype == "temporal":
            question = _fill(rng.choice(family.past), subject, filler)
            questions.append({"type": qtype, "question": question, "relevant": [keys[0]]})
    return questions


#: Makes one abstention question and the terms it hinges on (which must be absent from every memory).
Abstainer = Callable[[random.Random], tuple[str, list[str]]]


def make_abstentions(rng: random.Random, makers: Sequence[Abstainer], texts: list[str], n: int,
                     asked: set[str]) -> list[dict[str, Any]]:
    """`n` questions about things no memory in `texts` mentions, cycling through the makers."""
    out: list[dict[str, Any]] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * max(1, n):
            raise ValueError("could not find enough abstention questions whose terms are absent from the corpus")
        question, absent = makers[len(out) % len(makers)](rng)
        if question in asked or not all(absent_everywhere(term, texts) for term in absent):
            continue
        asked.add(question)
        out.append({"type": "abstention", "question": question, "relevant": [], "absent": absent})
    return out
