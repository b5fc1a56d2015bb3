"""The organisation's graph (people, teams, services, libraries, hosts) and its multi-hop questions.

The world is built first and kept consistent (one team per person, one owner per service, one
datacenter per host), then every edge is written as one memory with one clear relation verb.
Consistency is what makes a multi-hop question have exactly one answer: "who does Priya report
to?" follows person → team → lead, and no other memory states a different lead.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from evals.memory._text import shared_content_words
from evals.memory._vocab import (
    DATACENTERS,
    FIRST_NAMES,
    GROUPS,
    LAST_NAMES,
    LIBRARIES,
    SERVICE_DOMAINS,
    SERVICE_KINDS,
    TEAMS,
)

__all__ = ["CHAIN_FAMILIES", "Edge", "World", "build_world", "cap", "chain_question", "chain_starts", "render_edge"]

Edge = tuple[str, ...]  # ("member", person) | ("lead", team) | ("uses", service, lib) | ...

_EDGE_TEMPLATES: dict[str, list[str]] = {
    "member": ["{a} works on the {b} team.", "{a} is a member of the {b} team.", "{a} belongs to the {b} team."],
    "lead": ["The {a} team is led by {b}.", "{b} leads the {a} team.", "{b} manages the {a} team."],
    "group": ["The {a} team is part of the {b} group.", "The {a} team belongs to the {b} group.",
              "The {a} team reports to the {b} group."],
    "owner": ["{a} is owned by the {b} team.", "The {b} team owns {a}.", "The {b} team maintains {a}."],
    "uses": ["{a} uses {b}.", "{a} is built on {b}.", "{a} relies on {b}."],
    "dep": ["{a} depends on {b}.", "{a} requires {b}.", "{a} imports {b}."],
    "host": ["{a} runs on {b}.", "{a} is deployed to {b}.", "{a} is hosted on {b}."],
    "dc": ["{a} is located in the {b} datacenter.", "{a} is based in the {b} datacenter.",
           "{a} lives in the {b} datacenter."],
}

#: Multi-hop families: question templates that avoid the relation verbs of the later hops.
CHAIN_FAMILIES: dict[str, list[str]] = {
    "dependency": ["What does {x} indirectly rely on?", "What ends up underneath {x}, below its direct imports?",
                   "Which lower-level package sits beneath {x}?", "What does {x} pull in transitively?"],
    "manager": ["Who is the manager of {x}?", "Who does {x} report to?", "Who approves time off for {x}?",
                "Who runs one-on-ones with {x}?"],
    "org": ["Which department is {x} in?", "What division does {x} fall under?",
            "In which part of the org chart is {x}?"],
    "location": ["In which city do the machines behind {x} physically sit?", "Which city is {x} served from?",
                 "Where in the world does {x} physically live?"],
    "escalation": ["Who should I escalate to about {x}?", "Who is ultimately accountable for {x}?",
                   "Which person has the final say over {x}?"],
}


def cap(text: str) -> str:
    """Capitalise a leading article only: identifiers and package names keep their case."""
    return "The" + text[3:] if text.startswith("the ") else text


@dataclass
class World:
    people: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    member: dict[str, str] = field(default_factory=dict)  # person -> team
    lead: dict[str, str] = field(default_factory=dict)  # team -> person
    group: dict[str, str] = field(default_factory=dict)  # team -> group
    services: list[str] = field(default_factory=list)  # "the billing service"
    owner: dict[str, str] = field(default_factory=dict)  # service -> team
    uses: dict[str, list[str]] = field(default_factory=dict)  # service -> libraries
    dep: dict[str, str] = field(default_factory=dict)  # library -> library
    host: dict[str, str] = field(default_factory=dict)  # service -> hostname
    dc: dict[str, str] = field(default_factory=dict)  # hostname -> city

    def edges(self) -> list[Edge]:
        """Every edge, in a fixed order."""
        out: list[Edge] = [("member", p) for p in self.people]
        out += [("lead", t) for t in self.teams] + [("group", t) for t in self.teams]
        for s in self.services:
            out += [("owner", s), *[("uses", s, lib) for lib in self.uses[s]], ("host", s)]
        out += [("dep", lib) for lib in self.dep] + [("dc", h) for h in self.dc]
        return out

    def dep_chain(self, lib: str) -> list[str]:
        """The libraries below `lib`, nearest first."""
        chain: list[str] = []
        while lib in self.dep:
            lib = self.dep[lib]
            chain.append(lib)
        return chain


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def build_world(rng: random.Random, n_memories: int, new_host: Callable[[], str]) -> World:
    """A consistent organisation whose size grows with the corpus."""
    w = World()
    n_services = _clamp(n_memories // 50, 6, len(SERVICE_DOMAINS))
    n_teams = _clamp(n_services // 3, 3, len(TEAMS))
    n_people = _clamp(n_teams * 3, 9, min(len(FIRST_NAMES), len(LAST_NAMES)))
    w.people = [f"{f} {ln}" for f, ln in zip(rng.sample(FIRST_NAMES, n_people), rng.sample(LAST_NAMES, n_people), strict=True)]
    w.teams = rng.sample(TEAMS, n_teams)
    for team, person in zip(w.teams, w.people, strict=False):
        w.lead[team] = person
        w.member[person] = team
    for person in w.people[n_teams:]:
        w.member[person] = rng.choice(w.teams)
    for team in w.teams:
        w.group[team] = rng.choice(GROUPS)
    w.services = [f"the {d} {rng.choice(SERVICE_KINDS)}" for d in rng.sample(SERVICE_DOMAINS, n_services)]
    libs = rng.sample(LIBRARIES, _clamp(n_services, 8, len(LIBRARIES)))
    depth: dict[str, int] = {}
    for i in range(len(libs) - 1, -1, -1):  # targets come later in the list: no cycles; chains ≤ 3 libraries
        targets = [lib for lib in libs[i + 1:] if depth[lib] <= 1]
        if targets and rng.random() < 0.65:
            w.dep[libs[i]] = rng.choice(targets)
        depth[libs[i]] = depth[w.dep[libs[i]]] + 1 if libs[i] in w.dep else 0
    for s in w.services:
        w.owner[s] = rng.choice(w.teams)
        w.uses[s] = rng.sample(libs, 1 if rng.random() < 0.6 else 2)
        h = new_host()
        w.host[s] = h
        w.dc[h] = DATACENTERS[h.split(".", 1)[1]]
    return w


def render_edge(rng: random.Random, w: World, edge: Edge) -> str:
    kind = edge[0]
    a, b = {
        "member": lambda: (edge[1], w.member[edge[1]]),
        "lead": lambda: (edge[1], w.lead[edge[1]]),
        "group": lambda: (edge[1], w.group[edge[1]]),
        "owner": lambda: (edge[1], w.owner[edge[1]]),
        "uses": lambda: (edge[1], edge[2]),
        "dep": lambda: (edge[1], w.dep[edge[1]]),
        "host": lambda: (edge[1], w.host[edge[1]]),
        "dc": lambda: (edge[1], w.dc[edge[1]]),
    }[kind]()
    return cap(rng.choice(_EDGE_TEMPLATES[kind]).format(a=a, b=b))


def chain_starts(w: World, family: str) -> list[tuple[str, list[Edge]]]:
    """(start entity, the edges after the first hop) for every start with a unique answer."""
    leads = set(w.lead.values())
    if family == "dependency":
        return [(s, [("dep", lib) for lib in [w.uses[s][0], *w.dep_chain(w.uses[s][0])][:-1]])
                for s in w.services if len(w.uses[s]) == 1 and w.uses[s][0] in w.dep]
    if family == "manager":
        return [(p, [("lead", w.member[p])]) for p in w.people if p not in leads]
    if family == "org":
        return [(p, [("group", w.member[p])]) for p in w.people if p not in leads]
    if family == "location":
        return [(s, [("dc", w.host[s])]) for s in w.services]
    if family == "escalation":
        return [(s, [("lead", w.owner[s])]) for s in w.services]
    raise ValueError(f"unknown chain family {family!r}")


def chain_question(rng: random.Random, family: str, start: str, relevant_texts: list[str]) -> str | None:
    """A question about `start` sharing no content word with any relevant memory, or None."""
    templates = CHAIN_FAMILIES[family][:]
    rng.shuffle(templates)
    for template in templates:
        question = template.format(x=start)
        question = question[0].upper() + question[1:]
        if not any(shared_content_words(question, text) for text in relevant_texts):
            return question
    return None
