"""Brackenford's council as a graph, written in many styles, and its multi-hop questions.

The world is consistent, as in the first generator (each facility in one district, each district
one councillor, each route one depot), so every chain has one answer. What differs is how the
edges are written: short statements, passive voice, notes-style fragments, long sentences with
asides, quoted speech, and lists that state several edges of one relation in a single memory
("The Millbrook depot operates routes 14, 22 and 31."). A relation extractor written for one
template cannot follow these; a graph built from generic signals can.

Multi-hop chains have two or three hops. The question names the start entity; the first memory
links it to a second entity, the next links that to a third, and so on. Every memory on the path
is relevant, and each memory after the first shares no content word with the question.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from evals.memory._text import shared_content_words
from evals.memory.civic._vocab import (
    COMMITTEES,
    CONTRACTORS,
    DEPARTMENTS,
    DEPOTS,
    DISTRICTS,
    FACILITY_KINDS,
    FACILITY_NAMES,
    FIRST_NAMES,
    LAST_NAMES,
    PARKS,
)

__all__ = ["CHAINS", "Chain", "Edge", "World", "build_world", "cap", "chain_question", "chain_starts", "render_edges"]

Edge = tuple[str, str]  # (relation, the entity it is about): ("sited", "Hollyhock Library")

#: Single-edge templates by relation; {a} is the entity, {b} the other end, {A} = {a} capitalised.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "sited": (
        "{A} is in {b}.",
        "{A} is located in the {b} ward.",
        "{A}: {b}.",
        "{A} — {b} area, opposite the old market.",
        "If you are visiting {a}, you will find it in {b}, a short walk from the main square.",
        "“{A}? That's over in {b},” the front desk confirmed.",
        "Site register: {a}, district {b}.",
    ),
    "rep": (
        "Cllr {b} represents {a}.",
        "{A} is represented on the council by {b}.",
        "{A} ward: Cllr {b}.",
        "{b} has been the elected member for {a} since the last local elections and holds a surgery most Saturday mornings.",
        "“I've sat for {a} for six years now,” says Cllr {b}.",
    ),
    "runs": (
        "{A} is run by {b}.",
        "{b} runs {a}.",
        "{A} sits within the {b} directorate.",
        "Budget holder for {a}: {b}.",
        "Since the restructure, staffing and spending decisions for {a} have been taken by the {b} directorate.",
        "“{A} is one of ours,” a {b} spokesperson said.",
    ),
    "head": (
        "{b} heads {a}.",
        "{A} is headed by {b}.",
        "Director of {a}: {b}.",
        "{b}, who took over {a} when the previous director retired, signs off its spending.",
        "“My door is always open,” says {b}, director of {a}.",
    ),
    "under": (
        "{A} reports to {b}.",
        "{A} is scrutinised by {b}.",
        "Oversight of {a}: {b}.",
        "Decisions taken in {a} go before {b} every quarter.",
    ),
    "chair": (
        "{b} chairs {a}.",
        "{A} is chaired by Cllr {b}.",
        "Chair, {a}: Cllr {b}.",
        "Cllr {b} was re-elected as chair of {a} at the annual meeting.",
    ),
    "manages": (
        "{b} manages {a}.",
        "{A} is managed by {b}.",
        "{A} — site manager {b}.",
        "{b} has looked after {a} day to day since it reopened after the refurbishment.",
        "“Come and say hello,” says {b}, who manages {a}.",
    ),
    "route": (
        "{A} runs out of {b}.",
        "Buses on {a} are based at {b}.",
        "{A}: {b}.",
        "{A} is operated from {b}.",
    ),
    "contract": (
        "Grounds maintenance at {a} is contracted to {b}.",
        "{b} look after {a}.",
        "{A}: maintained by {b}.",
        "Mowing, litter picking and hedge work at {a} are done by {b} under a five-year contract.",
    ),
    "contact": (
        "{b} is the account manager at {a}.",
        "Our contact at {a} is {b}.",
        "{A} — account lead {b}.",
        "For anything to do with {a}, email {b}, who manages the council account.",
    ),
}

#: Lists: several edges of one relation in one memory. Grouped by the shared far end ({b}) or not.
_LISTS: dict[str, tuple[str, ...]] = {
    "sited": ("Council sites in {b}: {items}.", "In {b} you'll find {items}."),
    "runs": ("The {b} directorate is responsible for {items}.",),
    "route": ("{B} operates {items}.", "Allocated to {b}: {items}."),
    "contract": ("{b} hold the grounds contract for {items}.",),
}
_FLAT_LISTS: dict[str, str] = {"rep": "Ward members — {items}."}


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class World:
    people: list[str] = field(default_factory=list)  # everyone named, in creation order
    districts: list[str] = field(default_factory=list)
    councillor: dict[str, str] = field(default_factory=dict)  # district -> person
    departments: list[str] = field(default_factory=list)
    director: dict[str, str] = field(default_factory=dict)  # department -> person
    committee: dict[str, str] = field(default_factory=dict)  # department -> committee
    chair: dict[str, str] = field(default_factory=dict)  # committee -> councillor
    facilities: list[str] = field(default_factory=list)
    department: dict[str, str] = field(default_factory=dict)  # facility -> department
    manager: dict[str, str] = field(default_factory=dict)  # facility -> person
    district: dict[str, str] = field(default_factory=dict)  # facility | park | depot -> district
    depots: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)  # "route 14"
    depot: dict[str, str] = field(default_factory=dict)  # route -> depot
    parks: list[str] = field(default_factory=list)
    contractor: dict[str, str] = field(default_factory=dict)  # park -> contractor
    contractors: list[str] = field(default_factory=list)
    account: dict[str, str] = field(default_factory=dict)  # contractor -> person
    #: People without a role in the graph: staff for leave notes, preferences and updates.
    staff: list[str] = field(default_factory=list)

    def far_end(self, edge: Edge) -> str:
        relation, a = edge
        table = {"sited": self.district, "rep": self.councillor, "runs": self.department, "head": self.director,
                 "under": self.committee, "chair": self.chair, "manages": self.manager, "route": self.depot,
                 "contract": self.contractor, "contact": self.account}[relation]
        return table[a]

    def edges(self) -> list[Edge]:
        """Every edge, in a fixed order."""
        out: list[Edge] = [("sited", p) for p in [*self.facilities, *self.parks, *self.depots]]
        out += [("rep", d) for d in self.districts]
        out += [("runs", f) for f in self.facilities] + [("manages", f) for f in self.facilities]
        out += [("head", d) for d in self.departments] + [("under", d) for d in self.departments]
        out += [("chair", c) for c in sorted(set(self.committee.values()), key=COMMITTEES.index)]
        out += [("route", r) for r in self.routes] + [("contract", p) for p in self.parks]
        out += [("contact", c) for c in self.contractors]
        return out

    def manager_of(self, person: str) -> str:
        return next(f for f, p in self.manager.items() if p == person)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def build_world(rng: random.Random, n_memories: int) -> World:
    """A consistent council whose size grows with the corpus."""
    w = World()
    n_facilities = _clamp(n_memories // 70, 8, len(FACILITY_NAMES))
    names = [f"{f} {ln}" for f, ln in zip(rng.sample(FIRST_NAMES, len(FIRST_NAMES)),
                                          rng.sample(LAST_NAMES, len(LAST_NAMES)), strict=False)]
    people = iter(names)
    w.districts = rng.sample(sorted(DISTRICTS), _clamp(n_memories // 120, 6, len(DISTRICTS)))
    for d in w.districts:
        w.councillor[d] = next(people)
    w.departments = list(DEPARTMENTS)
    for dept in w.departments:
        w.director[dept] = next(people)
        w.committee[dept] = rng.choice(COMMITTEES)
    for c in sorted(set(w.committee.values()), key=COMMITTEES.index):
        w.chair[c] = rng.choice(sorted(w.councillor.values()))
    kinds = list(FACILITY_KINDS)
    for name in rng.sample(FACILITY_NAMES, n_facilities):
        kind = rng.choice(kinds)
        facility = f"{name} {kind}"
        w.facilities.append(facility)
        w.department[facility] = FACILITY_KINDS[kind] if rng.random() < 0.75 else rng.choice(DEPARTMENTS)
        w.district[facility] = rng.choice(w.districts)
        w.manager[facility] = next(people)
    w.depots = rng.sample(DEPOTS, _clamp(n_memories // 300, 3, len(DEPOTS)))
    for depot in w.depots:
        w.district[depot] = rng.choice(w.districts)
    numbers = rng.sample(range(1, 100), _clamp(n_memories // 60, 8, 40))
    w.routes = [f"route {n}" for n in numbers]
    for route in w.routes:
        w.depot[route] = rng.choice(w.depots)
    w.parks = rng.sample(PARKS, _clamp(n_memories // 150, 4, len(PARKS)))
    w.contractors = rng.sample(CONTRACTORS, _clamp(len(w.parks) // 2, 2, len(CONTRACTORS)))
    for park in w.parks:
        w.district[park] = rng.choice(w.districts)
        w.contractor[park] = rng.choice(w.contractors)
    for contractor in w.contractors:
        w.account[contractor] = next(people)
    w.staff = list(people)
    w.people = names
    return w


def _items(relation: str, entities: list[str]) -> str:
    if relation == "route":  # "routes 14, 22 and 31": the entity "route 14" never appears verbatim
        return "routes " + _and([e.split()[1] for e in entities])
    return _and(entities)


def render_edges(rng: random.Random, w: World) -> list[tuple[str, list[Edge]]]:
    """Every edge as memory text: one memory per edge, or a list memory for several edges."""
    out: list[tuple[str, list[Edge]]] = []
    pending = w.edges()
    grouped: dict[tuple[str, str], list[Edge]] = {}
    for edge in pending:
        grouped.setdefault((edge[0], w.far_end(edge)), []).append(edge)
    done: set[Edge] = set()
    for edge in pending:
        if edge in done:
            continue
        relation, a = edge
        siblings = [e for e in grouped[(relation, w.far_end(edge))] if e not in done]
        if relation in _LISTS and len(siblings) >= 2 and rng.random() < 0.3:
            members = siblings[: rng.randint(2, min(4, len(siblings)))]
            b = w.far_end(edge)
            text = rng.choice(_LISTS[relation]).format(b=b, B=cap(b), items=_items(relation, [e[1] for e in members]))
            out.append((cap(text), members))
            done.update(members)
            continue
        if relation in _FLAT_LISTS and rng.random() < 0.3:
            members = [e for e in pending if e[0] == relation and e not in done][: rng.randint(2, 3)]
            if len(members) >= 2:
                items = "; ".join(f"{e[1]}: Cllr {w.far_end(e)}" for e in members)
                out.append((_FLAT_LISTS[relation].format(items=items), members))
                done.update(members)
                continue
        b = w.far_end(edge)
        out.append((rng.choice(_TEMPLATES[relation]).format(a=a, A=cap(a), b=b, B=cap(b)), [edge]))
        done.add(edge)
    return out


@dataclass(frozen=True)
class Chain:
    hops: int
    questions: tuple[str, ...]  # {x}: the start entity


#: Chain families. The question names the start; the path follows `chain_starts`.
CHAINS: dict[str, Chain] = {
    "ward_rep": Chain(2, (
        "Which elected member covers the neighbourhood around {x}?",
        "Who should I lobby at the town hall about {x}?",
        "{X} — whose patch is that, politically?",
        "If I want to complain to a politician about {x}, who is it?",
    )),
    "director": Chain(2, (
        "Which senior officer is ultimately responsible for {x}?",
        "Who is the top official above {x}?",
        "Who signs off the budget for {x} at the very top?",
        "Whose directorate has the final say over {x}?",
    )),
    "garage_area": Chain(2, (
        "Where do the buses on {x} sleep at night?",
        "Which part of town are the vehicles for {x} kept in overnight?",
        "In what neighbourhood is the yard for {x}?",
    )),
    "park_contact": Chain(2, (
        "Who do I phone about the grass cutting in {x}?",
        "Who is my contact for mowing and litter picking at {x}?",
        "Someone needs to sort out the overgrown hedges at {x} — who do I ring?",
    )),
    "workplace_area": Chain(2, (
        "Which part of the city does {x} work in?",
        "What neighbourhood is {x}'s workplace in?",
        "Where in town would I find {x} during office hours?",
    )),
    "route_rep": Chain(3, (
        "Who is the elected member for the place where the {x} fleet parks overnight?",
        "Which politician speaks for the neighbourhood where {x} buses are garaged?",
        "Whose constituency holds the overnight base of {x}?",
    )),
    "committee_chair": Chain(3, (
        "Which politician presides over the scrutiny of {x}?",
        "Who leads the elected body that oversees {x}?",
        "Which councillor holds {x} to account in the end?",
    )),
    "workplace_rep": Chain(3, (
        "Who is the elected member for the neighbourhood where {x} works?",
        "Which politician speaks for the area around {x}'s workplace?",
        "If {x} wanted to lobby their workplace's local politician, who would that be?",
    )),
}


def chain_starts(w: World, family: str) -> list[tuple[str, list[Edge]]]:
    """(start entity, every edge on its path, in order) for each start of a chain family."""
    if family == "ward_rep":
        return [(p, [("sited", p), ("rep", w.district[p])]) for p in [*w.facilities, *w.parks]]
    if family == "director":
        return [(f, [("runs", f), ("head", w.department[f])]) for f in w.facilities]
    if family == "garage_area":
        return [(r, [("route", r), ("sited", w.depot[r])]) for r in w.routes]
    if family == "park_contact":
        return [(p, [("contract", p), ("contact", w.contractor[p])]) for p in w.parks]
    if family == "workplace_area":
        return [(w.manager[f], [("manages", f), ("sited", f)]) for f in w.facilities]
    if family == "route_rep":
        return [(r, [("route", r), ("sited", w.depot[r]), ("rep", w.district[w.depot[r]])]) for r in w.routes]
    if family == "committee_chair":
        return [(f, [("runs", f), ("under", w.department[f]), ("chair", w.committee[w.department[f]])])
                for f in w.facilities]
    if family == "workplace_rep":
        return [(w.manager[f], [("manages", f), ("sited", f), ("rep", w.district[f])]) for f in w.facilities]
    raise ValueError(f"unknown chain family {family!r}")


def chain_question(rng: random.Random, family: str, start: str, later_texts: list[str],
                   dress: Callable[[str], str]) -> str | None:
    """A question about `start` (`dress` adds a lead-in) sharing no content word with the memories after the first hop."""
    templates = list(CHAINS[family].questions)
    rng.shuffle(templates)
    for template in templates:
        question = dress(template.format(x=start, X=cap(start)))
        if not any(shared_content_words(question, text) for text in later_texts):
            return question
    return None
