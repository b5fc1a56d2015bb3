"""Brackenford's memories outside the council graph: identifiers, plain facts and chatter.

Identifiers have shapes the first generator never uses: planning applications
(``24/01873/FUL``), six-digit work orders, streetlight columns (``SM/0231``), freedom-of-
information requests (``FOI-23-0412``) and four-digit bus fleet numbers. Each asked identifier
has near-duplicates one small edit away in memories of the same family. Plain families share
keywords with their questions; chatter answers nothing.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from evals.memory.civic._vocab import COMMITTEES, DISTRICTS, MONTHS, STREETS, WEEKDAYS
from evals.memory.civic._world import World, cap

__all__ = ["EDGE_QUESTION_RELATIONS", "IDENTIFIER_RE", "IDENT_KINDS", "PLAIN_FAMILIES", "Fact", "chatter", "edge_question", "ident_memory",
           "ident_question", "identifiers", "near_duplicate", "new_ident"]

IDENT_KINDS = ("planning", "work_order", "column", "foi", "fleet")

#: The identifiers of this corpus. Fleet numbers and work orders are bare numbers, so they are
#: matched with the word that introduces them (the texts never use other 4- or 6-digit numbers).
IDENTIFIER_RE = re.compile(
    r"\b(?:\d{2}/\d{5}/[A-Z]{3}"
    r"|[A-Z]{2}/\d{4}"
    r"|FOI-\d{2}-\d{4})\b"
    r"|(?<=[Ww]ork order )\d{6}\b|(?<=WO )\d{6}\b"
    r"|(?<=[Bb]us )\d{4}\b|(?<=[Ff]leet number )\d{4}\b|(?<=[Vv]ehicle )\d{4}\b"
)

_SUFFIXES = ("FUL", "HOU", "LBC", "ADV")
_EVENTS = ("book sale", "summer fair", "open day", "craft market", "family fun day", "quiz night", "jumble sale")


@dataclass(frozen=True)
class Fact:
    text: str
    memory_type: str
    unique: tuple[str, ...]
    question: str | None = None


def identifiers(text: str) -> list[str]:
    """Every identifier of this corpus in `text`, in order."""
    return [m.group(0) for m in IDENTIFIER_RE.finditer(text)]


def _digit(rng: random.Random, number: str, keep_first: bool = True) -> str:
    """One digit changed, or two adjacent different digits swapped."""
    chars = list(number)
    pairs = [i for i in range(len(chars) - 1) if chars[i] != chars[i + 1] and not (keep_first and i == 0)]
    if pairs and rng.random() < 0.35:
        i = rng.choice(pairs)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    else:
        i = rng.randrange(1 if keep_first else 0, len(chars))
        chars[i] = rng.choice([d for d in "0123456789" if d != chars[i]])
    return "".join(chars)


def new_ident(rng: random.Random, kind: str) -> str:
    if kind == "planning":
        return f"{rng.randint(19, 25)}/{rng.randint(0, 3999):05d}/{rng.choice(_SUFFIXES)}"
    if kind == "work_order":
        return str(rng.randint(300000, 899999))
    if kind == "column":
        return f"{rng.choice(sorted(DISTRICTS.values()))}/{rng.randint(1, 1999):04d}"
    if kind == "foi":
        return f"FOI-{rng.randint(19, 25)}-{rng.randint(1, 1999):04d}"
    if kind == "fleet":
        return str(rng.randint(3000, 8999))
    raise ValueError(f"unknown identifier kind {kind!r}")


def near_duplicate(rng: random.Random, kind: str, ident: str) -> str:
    """An identifier of the same kind one small edit away."""
    if kind == "planning":
        year, number, suffix = ident.split("/")
        if rng.random() < 0.2:
            return f"{year}/{number}/{rng.choice([s for s in _SUFFIXES if s != suffix])}"
        return f"{year}/{_digit(rng, number, keep_first=False)}/{suffix}"
    if kind in ("work_order", "fleet"):
        return _digit(rng, ident)
    if kind == "column":
        code, number = ident.split("/")
        if rng.random() < 0.25:
            return f"{rng.choice([c for c in sorted(DISTRICTS.values()) if c != code])}/{number}"
        return f"{code}/{_digit(rng, number, keep_first=False)}"
    _, year, number = ident.split("-")
    return f"FOI-{year}-{_digit(rng, number, keep_first=False)}"


def ident_memory(rng: random.Random, w: World, kind: str, ident: str) -> Fact:
    street, facility = rng.choice(STREETS), rng.choice(w.facilities)
    month = rng.choice(MONTHS)
    if kind == "planning":
        what = rng.choice(["a two-storey rear extension", "change of use from shop to café", "a loft conversion with dormers",
                           "six flats above the old post office", "a replacement shopfront", "an illuminated fascia sign"])
        text = rng.choice([
            f"Planning application {ident} ({what}, {street}) was approved under delegated powers.",
            f"{ident} — {what} on {street}; decision due in {month}.",
            f"Objections to {ident} closed in {month}. Most of them cited parking on {street}.",
            f"The committee refused {ident}, {what} at {street}, on design grounds.",
        ])
        return Fact(text, "event", ("ident", ident))
    if kind == "work_order":
        text = rng.choice([
            f"Work order {ident}: replace the broken bollard outside {facility}.",
            f"WO {ident} raised for a leaking roof at {facility}; contractor booked for {rng.choice(WEEKDAYS)}.",
            f"Work order {ident} closed — the fire doors at {facility} now latch properly.",
            f"Parts for work order {ident} (boiler at {facility}) are on back order until {month}.",
        ])
        return Fact(text, "event", ("ident", ident))
    if kind == "column":
        text = rng.choice([
            f"Streetlight column {ident} on {street} is flickering; an electrician is booked.",
            f"Column {ident} was knocked down in a collision on {street} and has been made safe.",
            f"{ident} ({street}) is due for an LED lantern swap in {month}.",
        ])
        return Fact(text, "event", ("ident", ident))
    if kind == "foi":
        text = rng.choice([
            f"{ident} asked for the cost of refurbishing {facility}; answered in {month}.",
            f"Freedom of information request {ident}: spending on consultants by {rng.choice(COMMITTEES)}.",
            f"{ident} was refused under the vexatious-requests exemption after the requester asked for every email about {street}.",
        ])
        return Fact(text, "event", ("ident", ident))
    depot = rng.choice(w.depots)
    text = rng.choice([
        f"Bus {ident} failed its annual test on brakes and is off the road.",
        f"Fleet number {ident} was repainted in the new livery in {month}.",
        f"Vehicle {ident} moved to {depot} to cover for breakdowns.",
        f"Bus {ident} had its wheelchair ramp repaired after a complaint.",
    ])
    return Fact(text, "event", ("ident", ident))


_IDENT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "planning": ("What's happening with planning application {i}?", "Any news on {i}?", "{i}: status?",
                 "Remind me what {i} was about."),
    "work_order": ("What is work order {i} about?", "Pull up work order {i} for me.", "Any update on work order {i}?"),
    "column": ("Anything logged against column {i}?", "What's the story with {i}?", "Is there a note about {i}?"),
    "foi": ("What did {i} ask for?", "I need the notes on {i}.", "{i} — what happened with it?"),
    "fleet": ("What do we know about bus {i}?", "Is bus {i} running?", "Any notes on fleet number {i}?"),
}


def ident_question(rng: random.Random, kind: str, ident: str) -> str:
    return rng.choice(_IDENT_QUESTIONS[kind]).format(i=ident)


# -- plain families: each shares keywords with its question ---------------------------------
def _hours(rng: random.Random, w: World) -> Fact:
    f = rng.choice(w.facilities)
    open_, close = rng.choice(["8am", "9am", "9.30am", "10am"]), rng.choice(["5pm", "6pm", "7pm", "8pm"])
    sat = rng.choice(["9am to 1pm", "10am to 4pm", "9am to noon"])
    text = rng.choice([f"{f} is open {open_} to {close} on weekdays and {sat} on Saturdays.",
                       f"Opening times, {f}: Mon–Fri {open_}–{close}, Sat {sat}."])
    question = rng.choice([f"What are the Saturday opening times at {f}?", f"When is {f} open on Saturdays?"])
    return Fact(text, "fact", ("hours", f), question)


def _bins(rng: random.Random, w: World) -> Fact:
    d, day = rng.choice(w.districts), rng.choice(WEEKDAYS)
    text = rng.choice([f"Recycling in {d} is collected every other {day}.",
                       f"{d}: blue-bin recycling goes out fortnightly, {day} mornings."])
    question = rng.choice([f"Which day is recycling collected in {d}?", f"When does the recycling go out in {d}?"])
    return Fact(text, "fact", ("bins", d), question)


def _hall(rng: random.Random, w: World) -> Fact:
    f, price = rng.choice(w.facilities), rng.choice([18, 22, 25, 30, 35, 40])
    text = rng.choice([f"Hiring the main hall at {f} costs £{price} an hour.",
                       f"Room hire at {f}: main hall £{price}/hr, meeting room £{price // 2}/hr, tea and coffee extra."])
    question = rng.choice([f"How much does it cost to hire the main hall at {f}?", f"What's the hourly rate for the main hall at {f}?"])
    return Fact(text, "fact", ("hall", f), question)


def _permit(rng: random.Random, w: World) -> Fact:
    d, price = rng.choice(w.districts), rng.choice([45, 60, 75, 90, 110])
    text = rng.choice([f"A residents' parking permit in {d} costs £{price} a year.",
                       f"Parking permits for residents of {d} are £{price} annually; a second car pays double."])
    return Fact(text, "fact", ("permit", d), f"What does a residents' parking permit cost in {d}?")


def _closure(rng: random.Random, w: World) -> Fact:
    street, month, day = rng.choice(STREETS), rng.choice(MONTHS), rng.randint(1, 25)
    text = rng.choice([f"{street} will be closed for resurfacing from {day} {month} for {rng.randint(2, 9)} nights.",
                       f"Resurfacing: {street} shut overnight from {day} {month}, diversion via {rng.choice(STREETS)}."])
    return Fact(text, "event", ("closure", street), f"When is {street} closed for resurfacing?")


def _leave(rng: random.Random, w: World) -> Fact:
    person, month, start = rng.choice(w.staff), rng.choice(MONTHS), rng.randint(1, 18)
    text = rng.choice([f"{person} is on annual leave from {start} to {start + rng.randint(3, 9)} {month}; urgent queries go to the duty officer.",
                       f"Out of office: {person}, annual leave, back {start + 10} {month}."])
    return Fact(text, "event", ("leave", person), rng.choice([f"When is {person} on annual leave?", f"Is {person} on annual leave soon?"]))


def _meeting(rng: random.Random, w: World) -> Fact:
    committee = rng.choice(sorted(set(w.committee.values())))
    time, day = rng.choice(["6pm", "6.30pm", "7pm", "10am", "2pm"]), rng.choice(WEEKDAYS)
    text = rng.choice([f"{cap(committee)} meets at {time} on the first {day} of each month.",
                       f"Meeting cycle: {committee}, first {day} monthly, {time} start."])
    return Fact(text, "event", ("meeting", committee), f"When does {committee} meet?")


def _event(rng: random.Random, w: World) -> Fact:
    f, event = rng.choice(w.facilities), rng.choice(_EVENTS)
    month, day = rng.choice(MONTHS), rng.randint(1, 28)
    text = rng.choice([f"The {f} {event} is on {day} {month}.",
                       f"Save the date: {event} at {f}, {day} {month}, volunteers welcome."])
    return Fact(text, "event", ("event", f, event), f"When is the {event} at {f}?")


def _preference(rng: random.Random, w: World) -> Fact:
    person = rng.choice(w.staff)
    text, question = rng.choice([
        (f"{person} prefers a phone call to email for anything urgent.", f"How does {person} prefer to be contacted about urgent matters?"),
        (f"{person} would rather have papers printed than sent as attachments.", f"Does {person} want papers printed or sent as attachments?"),
        (f"{person} likes meetings kept to thirty minutes, agenda circulated the day before.", f"How long does {person} like meetings to be?"),
        (f"{person} asks that site visits be booked through their diary, never on Mondays.", f"How should site visits with {person} be booked?"),
    ])
    return Fact(text, "preference", ("preference", person), question)


_PROCEDURES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("book-hall", "book the sports hall at {F}", ("ring reception at least seven days ahead and pay the deposit online",
                                                  "fill in the booking form at the front desk; block bookings need a manager's sign-off")),
    ("lost", "claim lost property left at {F}", ("ask at reception with a description; items are kept for thirty days",
                                                 "email the site inbox with the date and a photo ID")),
    ("volunteer", "volunteer at {F}", ("complete the volunteer form and a basic DBS check", "come to the open evening, then shadow a shift")),
    ("fault", "report a fault in the building at {F}", ("log it on the facilities portal and tell the duty manager",
                                                        "call the repairs line and quote the site name")),
)


def _procedure(rng: random.Random, w: World) -> Fact:
    key, task, steps = rng.choice(_PROCEDURES)
    f = rng.choice(w.facilities)
    task = task.format(F=f)
    text = rng.choice([f"To {task}, {rng.choice(steps)}.", f"How to {task}: {rng.choice(steps)}."])
    return Fact(text, "procedure", ("procedure", key, f), rng.choice([f"How do I {task}?", f"What's the process to {task}?"]))


PLAIN_FAMILIES: dict[str, Callable[[random.Random, World], Fact]] = {
    "hours": _hours, "bins": _bins, "hall": _hall, "permit": _permit, "closure": _closure, "leave": _leave,
    "meeting": _meeting, "event": _event, "preference": _preference, "procedure": _procedure,
}

#: Plain questions about one edge of the graph (the memory is the edge's own, list or not).
_EDGE_QUESTIONS: dict[str, tuple[str, ...]] = {
    "sited": ("Which district is {a} in?", "What part of Brackenford is {a} in?"),
    "manages": ("Who manages {a}?", "Who is the manager at {a}?"),
    "route": ("Which depot does {a} run from?", "Where are the buses for {a} based?"),
    "contract": ("Who maintains {a}?", "Which contractor looks after the grounds at {a}?"),
    "head": ("Who heads {a}?", "Who is the director of {a}?"),
}


EDGE_QUESTION_RELATIONS = frozenset(_EDGE_QUESTIONS)


def edge_question(rng: random.Random, relation: str, entity: str) -> str:
    return rng.choice(_EDGE_QUESTIONS[relation]).format(a=entity)


_CHATTER = (
    "Staff bake sale at {F} raised £{n} for the hospice.",
    "Gritting crews were out on {S} overnight.",
    "Complaint logged about noise from the car park at {F}.",
    "{P} is collecting signatures for a zebra crossing on {S}.",
    "Minutes, {C}: item {n} deferred to next month.",
    "The {F} team won the inter-department quiz.",
    "Notes from the {M} ward walkabout in {D}: litter bins full, two streetlights out.",
    "{P} and {P2} will cover the front desk at {F} on {W}.",
    "Press line agreed on the {S} roadworks: apologise for the disruption, no new date yet.",
    "Reminder: timesheets are due on the last {W} of {M}.",
    "Heritage open weekend flyers are stacked in the {F} foyer.",
    "A resident wrote in to thank the {D} street cleaning crew for clearing the leaves.",
    "Photos from the {F} {E} are on the intranet.",
    "{P} is running the couch-to-5k group that meets outside {F} on {W} evenings.",
    "“Could someone move the Christmas tree lights out of the {F} store room?” asked {P}.",
    "Fire drill at {F} on {W}: everyone out in four minutes.",
    "{P} says the {S} bus shelter has lost a panel again.",
)


def chatter(rng: random.Random, w: World) -> Fact:
    p, p2 = rng.sample(w.staff, 2)
    text = rng.choice(_CHATTER).format(
        F=rng.choice(w.facilities), S=rng.choice(STREETS), P=p, P2=p2, C=rng.choice(sorted(set(w.committee.values()))),
        D=rng.choice(w.districts), M=rng.choice(MONTHS), W=rng.choice(WEEKDAYS), E=rng.choice(_EVENTS),
        n=rng.randint(2, 99))
    return Fact(cap(text), "event", ("chat", text))
