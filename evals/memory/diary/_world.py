"""The user's world as a graph (who lives where, who works where, whose pet goes to which vet),
written the way an assistant's memory writes it, and the diary's multi-hop questions.

The world is consistent: each person lives in one city and has at most one employer and one
partner, each company is based in one city, each pet has one owner and one vet practice, each
practice one clinician the user sees and one neighbourhood, each club one venue and one
organiser, each role ("sister", "boss") one person. So every chain has exactly one answer.

The same edge is written in the styles real assistant memories use: third-person notes
("User's sister is Ngozi."), terse key/value fragments ("Ngozi's employer: Tessera Labs"),
lower-case casual notes ("ngozi lives in busan now apparently"), quoted speech, long summaries
of a conversation with the fact buried inside, and lists that state several edges at once
("In Busan: Ngozi, Tiago and Farhan.", "People in the user's life — Ngozi (sister), ...").

Multi-hop chains have two or three hops. The question names the start (a role, a person, a pet,
a club or a clinician); the first memory links it to a second entity, the next links that to a
third, and so on. Every memory on the path is relevant, and each memory after the first shares no
content word with the question (nor any token a keyword index would match: `_words.keyword_free`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from evals.memory.diary._vocab import (
    AREAS,
    BREEDS,
    CITIES,
    CLUBS,
    COMPANIES,
    FIRST_NAMES,
    LAST_NAMES,
    MONTHS,
    PETS,
    PRACTICES,
    ROLES,
    VENUES,
    WEEKDAYS,
)
from evals.memory.diary._words import keyword_free

__all__ = ["CHAINS", "Chain", "Edge", "World", "build_world", "chain_question", "chain_starts", "render_edges",
           "start"]

Edge = tuple[str, str]  # (relation, the entity it is about): ("lives", "Ngozi")

#: Practice kinds whose clinician the user calls "Dr ...".
_DOCTOR_KINDS = frozenset({"dentist", "gp", "vet", "dermatologist"})


def start(text: str) -> str:
    """`text` at the start of a sentence: "the Lido" -> "The Lido"; names and lower-case brands stay."""
    return "T" + text[1:] if text.startswith("the ") else text


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class World:
    full: dict[str, str] = field(default_factory=dict)  # first name -> full name, for everyone
    core: list[str] = field(default_factory=list)  # people in the graph (first names)
    role: dict[str, str] = field(default_factory=dict)  # role -> person
    lives: dict[str, str] = field(default_factory=dict)  # person -> city
    works: dict[str, str] = field(default_factory=dict)  # person -> company
    based: dict[str, str] = field(default_factory=dict)  # company -> city
    partner: dict[str, str] = field(default_factory=dict)  # person -> person (both ways)
    pets: list[str] = field(default_factory=list)
    owner: dict[str, str] = field(default_factory=dict)  # pet -> person
    breed: dict[str, str] = field(default_factory=dict)  # pet -> breed
    vet: dict[str, str] = field(default_factory=dict)  # pet -> practice
    practices: list[str] = field(default_factory=list)
    kind: dict[str, str] = field(default_factory=dict)  # practice -> "dentist", "gp", ...
    called: dict[str, str] = field(default_factory=dict)  # practice -> what the user calls the clinician
    clinician: dict[str, str] = field(default_factory=dict)  # practice -> person (first name)
    located: dict[str, str] = field(default_factory=dict)  # venue | practice -> area
    clubs: list[str] = field(default_factory=list)
    meets: dict[str, str] = field(default_factory=dict)  # club -> venue
    runs: dict[str, str] = field(default_factory=dict)  # club -> person
    venues: list[str] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)
    cities: list[str] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)
    #: People outside the graph: birthdays, chatter and the facts that change over time.
    acquaintances: list[str] = field(default_factory=list)

    def far_end(self, edge: Edge) -> str:
        relation, a = edge
        table = {"role": self.role, "lives": self.lives, "works": self.works, "based": self.based,
                 "partner": self.partner, "owner": self.owner, "vet": self.vet, "clinician": self.clinician,
                 "located": self.located, "meets": self.meets, "runs": self.runs}[relation]
        return table[a]

    def edges(self) -> list[Edge]:
        """Every edge, in a fixed order (a partnership is one edge, from its first-named partner)."""
        out: list[Edge] = [("role", r) for r in self.role]
        out += [("lives", p) for p in self.lives] + [("works", p) for p in self.works]
        out += [("based", c) for c in self.based]
        seen: set[str] = set()
        for p, q in self.partner.items():
            if q not in seen:
                out.append(("partner", p))
                seen.add(p)
        out += [("owner", p) for p in self.pets] + [("vet", p) for p in self.pets]
        out += [("clinician", p) for p in self.practices] + [("located", v) for v in self.located]
        out += [("meets", c) for c in self.clubs] + [("runs", c) for c in self.clubs]
        return out

    def doctor(self, practice: str) -> bool:
        return self.kind[practice] in _DOCTOR_KINDS

    def clinician_name(self, practice: str) -> str:
        """How a question names the clinician: "Dr Nakamura" or "Bongani Ndlovu"."""
        first = self.clinician[practice]
        last = self.full[first].split(" ", 1)[1]
        return f"Dr {last}" if self.doctor(practice) else self.full[first]

    def clinician_forms(self, practice: str) -> list[str]:
        """How memories name the clinician (all share a word with `clinician_name`)."""
        first = self.clinician[practice]
        last = self.full[first].split(" ", 1)[1]
        if self.doctor(practice):
            return [f"Dr {last}", f"Dr. {last}", f"Dr {self.full[first]}"]
        return [self.full[first], first]

    def pet_of(self, person: str) -> str | None:
        return next((pet for pet, o in self.owner.items() if o == person), None)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def build_world(rng: random.Random, n_memories: int) -> World:
    """A consistent life whose size grows with the corpus."""
    w = World()
    firsts = rng.sample(FIRST_NAMES, len(FIRST_NAMES))
    lasts = rng.sample(LAST_NAMES, len(LAST_NAMES))
    w.full = {f: f"{f} {ln}" for f, ln in zip(firsts, lasts, strict=False)}
    people = iter(firsts)
    n_core = _clamp(n_memories // 30, 24, 64)
    w.core = [next(people) for _ in range(n_core)]
    w.cities = rng.sample(CITIES, _clamp(n_memories // 70, 8, len(CITIES)))
    w.companies = rng.sample(COMPANIES, _clamp(n_memories // 80, 6, len(COMPANIES)))
    for company in w.companies:
        w.based[company] = rng.choice(w.cities)
    roles = rng.sample(ROLES, _clamp(n_memories // 110, 8, len(ROLES)))
    for r, person in zip(roles, rng.sample(w.core, len(roles)), strict=True):
        w.role[r] = person
    for person in w.core:
        w.lives[person] = rng.choice(w.cities)
        if rng.random() < 0.75:
            w.works[person] = rng.choice(w.companies)
    singles = rng.sample(w.core, len(w.core))
    for _ in range(len(w.core) // 7):
        p, q = singles.pop(), singles.pop()
        w.partner[p], w.partner[q] = q, p
    # Practices: every vet practice the list holds, plus a sample of the others.
    vets = [p for p in PRACTICES if p[1] == "vet"]
    others = [p for p in PRACTICES if p[1] != "vet"]
    chosen = vets[: _clamp(n_memories // 500, 2, len(vets))]
    chosen += rng.sample(others, _clamp(n_memories // 250, 4, len(others)))
    w.areas = rng.sample(AREAS, _clamp(n_memories // 150, 6, len(AREAS)))
    for name, kind, called in chosen:
        w.practices.append(name)
        w.kind[name], w.called[name] = kind, called
        w.clinician[name] = next(people)
        w.located[name] = rng.choice(w.areas)
    vet_practices = [p for p in w.practices if w.kind[p] == "vet"]
    owners = rng.sample(w.core, _clamp(n_memories // 110, 6, len(PETS)))
    for pet, person in zip(rng.sample(sorted(PETS), len(owners)), owners, strict=True):
        w.pets.append(pet)
        w.owner[pet] = person
        w.breed[pet] = rng.choice(BREEDS[PETS[pet]])
        w.vet[pet] = rng.choice(vet_practices)
    w.venues = rng.sample(VENUES, _clamp(n_memories // 170, 4, len(VENUES)))
    for venue in w.venues:
        w.located[venue] = rng.choice(w.areas)
    w.clubs = rng.sample(CLUBS, _clamp(n_memories // 150, 5, len(CLUBS)))
    organisers = rng.sample(w.core, len(w.clubs))
    for club, person in zip(w.clubs, organisers, strict=True):
        w.meets[club] = rng.choice(w.venues)
        w.runs[club] = person
    w.acquaintances = [next(people) for _ in range(_clamp(n_memories // 60, 12, 30))]
    return w


# -- rendering ----------------------------------------------------------------------------
#: Single-edge templates by relation. {a}/{A}: the entity (A at a sentence start); {b}/{B}: the
#: far end; {af}/{bf}: a person's full name; {al}/{bl}: lower-cased, as in a casual note; {sp}
#: species, {br} breed, {k} what the user calls a clinician, {m} a month, {d} a weekday.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "role": (
        "User's {a} is {b}.",
        "{b} is the user's {a}.",
        "Their {a}, {bf}, comes up a lot in conversation.",
        "Note: {b} = user's {a}",
        "{a}: {bf}",
        "user mentioned their {a} {bl} again",
        "“{b}? That's my {a},” the user explained when the name came up.",
    ),
    "lives": (
        "{a} lives in {b}.",
        "{af} moved to {b} in {m}.",
        "{a} is based in {b} these days.",
        "{a} — {b}",
        "{a} relocated to {b} a couple of years ago and loves it.",
        "“{b} is home now,” {a} told the user.",
        "{al} lives in {bl} now apparently",
        "Catch-up summary: {a} has settled into a flat in {b}, is still hunting for a decent bakery nearby, "
        "and keeps asking the user to come and stay.",
    ),
    "works": (
        "{a} works at {b}.",
        "{af} got a job at {b} in {m}.",
        "{a}'s employer: {b}",
        "{a} is at {b} now (something in operations).",
        "{a} joined {b} after finishing their master's.",
        "{al} works for {bl}",
        "Long chat about careers. {a} has been at {b} for a few years, likes the people, hates the commute, "
        "and is thinking about asking for a four-day week.",
    ),
    "based": (
        "{A} is based in {b}.",
        "{A} has its headquarters in {b}.",
        "{A} — HQ in {b}",
        "{A}'s head office is in {b}.",
        "{A} started out in {b} and never left.",
        "{A} is a {b} firm.",
    ),
    "partner": (
        "{a}'s partner is {b}.",
        "{a} and {b} are married.",
        "{a} and {b} have been together since uni.",
        "{a} is engaged to {b}!",
        "{a} married {bf} in {m}; the user was at the wedding.",
        "{al} + {bl} are a couple",
    ),
    "owner": (
        "{A} is {b}'s {sp}.",
        "{b} has a {sp} called {a}.",
        "{b}'s {sp}: {a}, a {br}.",
        "{A} ({br}) belongs to {b}.",
        "{b} adopted {a}, a {br}, from a rescue centre.",
        "“{A} has stolen another sock,” {b} reported.",
    ),
    "vet": (
        "{A} is registered at {b}.",
        "{A}'s check-ups are at {b}.",
        "{A} — {b}, jabs due yearly",
        "{A} goes to {b} for boosters.",
        "booked {a} in at {b} for the annual booster",
    ),
    "clinician": (
        "At {a} the user sees {b}.",
        "Note: the {k} is {b} at {a}, appointments on {d}s.",
        "{A}: ask for {b}.",
        "{b} is the one at {a} the user trusts.",
        "{b} ({a})",
    ),
    "located": (
        "{A} is in {b}.",
        "{A} is on the high street in {b}.",
        "{A} — {b}, near the station",
        "{A} ({b})",
        "{A} is tucked away in {b}, past the big roundabout.",
    ),
    "meets": (
        "{A} meets at {b}.",
        "{A}: {d} evenings at {b}.",
        "{A} sessions are at {b}.",
        "the user goes to {a} at {b} most weeks",
        "{A} has used {b} for years; the user says the acoustics are awful.",
    ),
    "runs": (
        "{b} runs {a}.",
        "{A} is organised by {bf}.",
        "{A} — organiser: {b}",
        "{b} set up {a} a few years ago and still organises it.",
        "ask {b} about anything to do with {a}",
    ),
}

#: Lists that state several edges sharing their far end ({b}) in one memory.
_LISTS: dict[str, tuple[str, ...]] = {
    "lives": ("{items} live in {b}.", "In {b}: {items}.", "who's in {b}: {items}"),
    "works": ("{items} work at {b}.", "People the user knows at {b}: {items}."),
    "based": ("Companies headquartered in {b}: {items}.",),
    "located": ("Places in {b}: {items}.", "{B} has {items}."),
    "vet": ("Registered at {b}: {items}.",),
}


def _render_one(rng: random.Random, w: World, edge: Edge) -> str:
    relation, a = edge
    b = w.far_end(edge)
    if relation == "clinician":
        b = rng.choice(w.clinician_forms(a))
    fields = {"a": a, "A": start(a), "b": b, "B": start(b), "af": w.full.get(a, a), "bf": w.full.get(b, b),
              "al": a.lower(), "bl": b.lower(), "m": rng.choice(MONTHS), "d": rng.choice(WEEKDAYS), "sp": "", "br": "",
              "k": ""}
    if relation == "owner":
        fields["sp"], fields["br"] = PETS[a], w.breed[a]
    if relation == "clinician":
        fields["k"] = w.called[a]
    return rng.choice(_TEMPLATES[relation]).format(**fields)


def render_edges(rng: random.Random, w: World) -> list[tuple[str, list[Edge]]]:
    """Every edge as memory text: one memory per edge, or a list memory for several edges."""
    out: list[tuple[str, list[Edge]]] = []
    pending = w.edges()
    grouped: dict[tuple[str, str], list[Edge]] = {}
    for edge in pending:
        grouped.setdefault((edge[0], w.far_end(edge)), []).append(edge)
    done: set[Edge] = set()
    roles_listed = False
    for edge in pending:
        if edge in done:
            continue
        relation, a = edge
        siblings = [e for e in grouped[(relation, w.far_end(edge))] if e not in done]
        if relation in _LISTS and len(siblings) >= 2 and rng.random() < 0.3:
            members = siblings[: rng.randint(2, min(4, len(siblings)))]
            b = w.far_end(edge)
            items = _and([start(e[1]) if relation == "located" else e[1] for e in members])
            out.append((rng.choice(_LISTS[relation]).format(b=b, B=start(b), items=items), members))
            done.update(members)
            continue
        if relation == "role" and not roles_listed:
            roles_listed = True
            members = [e for e in pending if e[0] == "role"][: rng.randint(3, 5)]
            items = ", ".join(f"{w.role[r]} ({r})" for _, r in members)
            out.append((rng.choice(["People in the user's life — {items}.", "Who's who: {items}."]).format(items=items),
                        members))
            done.update(members)
            continue
        members = [edge]
        if relation == "partner":
            members.append(("partner", w.partner[a]))
        out.append((_render_one(rng, w, edge), members))
        done.update(members)
    return out


# -- multi-hop questions ------------------------------------------------------------------
@dataclass(frozen=True)
class Chain:
    hops: int
    questions: tuple[str, ...]  # {x}: the start entity


#: Chain families. The question names the start; the path follows `chain_starts`.
CHAINS: dict[str, Chain] = {
    "role_home": Chain(2, (
        "Remind me, which city is my {x} in these days?",
        "Where does my {x} live now?",
        "Did I ever tell you where my {x} lives?",
        "What city is my {x} living in?",
        "If I wanted to visit my {x}, where would I have to go?",
    )),
    "pet_home": Chain(2, (
        "Which city does {x} live in?",
        "Where is {x}'s home?",
        "What city is {x} in?",
        "If I wanted to visit {x}, where would I have to go?",
    )),
    "commute": Chain(2, (
        "Which city does {x} commute to?",
        "In which city is {x}'s company?",
        "What town does {x} travel to for their job?",
    )),
    "club_area": Chain(2, (
        "Which part of town is {x} in?",
        "What neighbourhood do I go to for {x}?",
        "Where in town does {x} happen?",
    )),
    "pet_clinician": Chain(2, (
        "Who's {x}'s vet?",
        "Which vet looks after {x}?",
        "Who do they see when {x} is poorly?",
        "What's the name of the vet who treats {x}?",
    )),
    "partner_job": Chain(2, (
        "Where does {x}'s partner work?",
        "Who employs {x}'s other half?",
        "What company is {x}'s spouse with?",
    )),
    "clinic_area": Chain(2, (
        "Where do I go to see {x}?",
        "Which part of town is {x}'s practice in?",
        "What neighbourhood will I find {x} in?",
    )),
    "organiser_home": Chain(2, (
        "Where does the person who runs {x} live?",
        "Which city is the organiser of {x} from?",
        "Whoever organises {x} — what city are they in?",
    )),
    "role_partner_job": Chain(3, (
        "Where does my {x}'s partner work?",
        "Who does my {x}'s other half work for?",
        "What company is my {x}'s spouse with?",
    )),
    "role_commute": Chain(3, (
        "Which city does my {x} commute to?",
        "In which city is my {x}'s company?",
        "What town does my {x} travel to for their job?",
    )),
    "pet_owner_commute": Chain(3, (
        "Which city does {x}'s owner commute to?",
        "In which city is the company of {x}'s human?",
        "What town does {x}'s owner travel to for their job?",
    )),
    "role_pet_clinic": Chain(3, (
        "Which clinic does my {x}'s pet go to?",
        "Where does my {x} take their pet for check-ups?",
        "What's the name of the practice my {x}'s animal is with?",
    )),
    "organiser_commute": Chain(3, (
        "Which city does the organiser of {x} commute to?",
        "In which city is the company of whoever runs {x}?",
    )),
}


def chain_starts(w: World, family: str) -> list[tuple[str, list[Edge]]]:
    """(start entity as the question names it, every edge on its path, in order) for each start."""
    if family == "role_home":
        return [(r, [("role", r), ("lives", p)]) for r, p in w.role.items()]
    if family == "pet_home":
        return [(pet, [("owner", pet), ("lives", w.owner[pet])]) for pet in w.pets]
    if family == "commute":
        return [(p, [("works", p), ("based", c)]) for p, c in w.works.items()]
    if family == "club_area":
        return [(c, [("meets", c), ("located", w.meets[c])]) for c in w.clubs]
    if family == "pet_clinician":
        return [(pet, [("vet", pet), ("clinician", w.vet[pet])]) for pet in w.pets]
    if family == "partner_job":
        return [(p, [("partner", p), ("works", q)]) for p, q in w.partner.items() if q in w.works]
    if family == "clinic_area":
        return [(w.clinician_name(p), [("clinician", p), ("located", p)]) for p in w.practices]
    if family == "organiser_home":
        return [(c, [("runs", c), ("lives", w.runs[c])]) for c in w.clubs]
    if family == "role_partner_job":
        return [(r, [("role", r), ("partner", p), ("works", w.partner[p])]) for r, p in w.role.items()
                if p in w.partner and w.partner[p] in w.works]
    if family == "role_commute":
        return [(r, [("role", r), ("works", p), ("based", w.works[p])]) for r, p in w.role.items() if p in w.works]
    if family == "pet_owner_commute":
        return [(pet, [("owner", pet), ("works", o), ("based", w.works[o])]) for pet, o in w.owner.items()
                if o in w.works]
    if family == "role_pet_clinic":
        out: list[tuple[str, list[Edge]]] = []
        for r, p in w.role.items():
            pet = w.pet_of(p)
            if pet is not None:
                out.append((r, [("role", r), ("owner", pet), ("vet", pet)]))
        return out
    if family == "organiser_commute":
        return [(c, [("runs", c), ("works", o), ("based", w.works[o])]) for c, o in w.runs.items() if o in w.works]
    raise ValueError(f"unknown chain family {family!r}")


def chain_question(rng: random.Random, family: str, entity: str, later_texts: list[str],
                   dress: Callable[[str], str]) -> str | None:
    """A question about `entity` (`dress` adds a lead-in) sharing no word with the memories after the first."""
    templates = list(CHAINS[family].questions)
    rng.shuffle(templates)
    for template in templates:
        question = dress(template.format(x=entity))
        if all(keyword_free(question, text) for text in later_texts):
            return question
    return None
