"""Which facts around a question's entities lead somewhere, and which only name look-alikes.

A multi-hop question follows a path: *Noor* —member_of→ *Willow* —part_of→ *Data*. The graph walk
also reaches every other member of Willow (``Kwame member_of Willow``) and every other part of
Data, and a busy team has many: those facts say that something else is *like* a step on the path
(a sibling), not where the path leads. PageRank cannot tell them apart — they are just as close —
so they crowd out the one fact the question is after.

The rule, applied hop by hop outwards from the seeds: a fact meeting a path entity in the same
role (subject or object) and with the same kind of relation (`relation_family`) as the fact that
reached it is a sibling, and whatever it leads to is a sibling entity; any other fact continues
the path. Facts that only touch sibling entities are siblings too.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from colony.memory._intent import relation_family

__all__ = ["MAX_HOPS", "sibling_facts"]

MAX_HOPS = 3

Fact = tuple[int, str, str, str, float]  # (memory_id, subject, relation, object, weight)


def sibling_facts(facts: Sequence[Fact], seeds: Collection[str]) -> set[int]:
    """Indexes into ``facts`` of the facts that only name siblings of a path from ``seeds``."""
    path: set[str] = set(seeds)
    frontier: set[str] = set(seeds)
    roles: set[tuple[str, str, str]] = set()  # (entity, role it was reached in, relation family)
    siblings: set[str] = set()
    sibling_idx: set[int] = set()
    done: set[int] = set()
    for _ in range(MAX_HOPS):
        reached: set[str] = set()
        new_roles: set[tuple[str, str, str]] = set()
        for i, (_, subject, relation, obj, _w) in enumerate(facts):
            if i in done or (subject not in frontier and obj not in frontier):
                continue
            done.add(i)
            if subject in path and obj in path:
                continue  # between two steps already on the path
            family = relation_family(relation)
            near, near_role, far, far_role = (
                (subject, "subject", obj, "object") if subject in frontier else (obj, "object", subject, "subject")
            )
            if near not in seeds and (near, near_role, family) in roles:
                sibling_idx.add(i)
                siblings.add(far)
            else:
                reached.add(far)
                new_roles.add((far, far_role, family))
        roles |= new_roles
        frontier = reached - path
        path |= reached
        if not frontier:
            break
    siblings -= path
    for i, (_, subject, _r, obj, _w) in enumerate(facts):
        if i not in done and (subject in siblings or obj in siblings):
            sibling_idx.add(i)
    return sibling_idx
