"""Brackenford's changing facts and its unanswerable questions.

Changes a council actually announces: a food bank moves, a swim costs more, a street becomes a
20 mph zone, a timetable changes, a committee meets elsewhere, Sunday hours shift, allotment
enquiries pass to someone else. None of them touches an edge of the council graph, so the
multi-hop chains stay true. The question wordings differ from Kestrel's on purpose ("these
days", "under the old timetable", "prior to", "originally").
"""

from __future__ import annotations

import random

from evals.memory._updates import Abstainer, UpdateFamily
from evals.memory.civic._vocab import VENUES

__all__ = ["ABSTAINERS", "UPDATE_FAMILIES"]

UPDATE_FAMILIES: tuple[UpdateFamily, ...] = (
    UpdateFamily(
        "food-bank", "district", "the {x} food bank", tuple(VENUES),
        ("{S} operates out of {v}.", "Notes: {s} — based at {v}, open Tuesdays and Fridays."),
        ("{S} has relocated to {v}.", "From this month {s} is based at {v}."),
        ("Where do people go for {s} these days?", "Where's {s} at the moment?"),
        ("Where was {s} before it relocated?", "Where did {s} operate previously?", "What was the original venue of {s}?"),
    ),
    UpdateFamily(
        "swim-price", "leisure", "an adult swim at {x}", ("£3.80", "£4.20", "£4.60", "£5.10", "£5.50"),
        ("{S} costs {v}.", "Price list: {s} — {v}."),
        ("{S} now costs {v} after the annual price review.", "The price of {s} went up to {v}."),
        ("What does {s} cost now?", "How much is {s} these days?"),
        ("What did {s} cost before the price rise?", "How much was {s} prior to the increase?"),
        order="up",
    ),
    UpdateFamily(
        "speed-limit", "street", "the speed limit on {x}", ("20 mph", "30 mph", "40 mph"),
        ("{S} is {v}.", "{x}: {v} limit, speed camera near the junction."),
        ("{S} has been cut to {v}.", "{x} became a {v} zone in the spring."),
        ("What's {s} now?", "How fast can I drive on {x} these days?"),
        ("What was {s} before it was reduced?", "How fast could you drive on {x} originally?"),
        order="down",
    ),
    UpdateFamily(
        "frequency", "route", "{x}", ("every 10 minutes", "every 12 minutes", "every 15 minutes", "every 20 minutes",
                                      "every 30 minutes"),
        ("{S} runs {v} on weekdays.", "Timetable: {s}, weekdays, {v}."),
        ("Since the timetable change, {s} runs {v} on weekdays.", "{S} now runs {v} Monday to Friday."),
        ("How often does {s} run on weekdays now?", "What's the weekday frequency of {s} at present?"),
        ("How often did {s} run before the timetable change?", "What was the weekday frequency of {s} under the old timetable?"),
        memory_type="event",
    ),
    UpdateFamily(
        "committee-room", "committee", "{x}", ("Committee Room 2", "Committee Room 4", "the Mayor's Parlour",
                                               "the council chamber", "the Guildhall annexe"),
        ("{S} meets in {v}.", "Venue for {s}: {v}."),
        ("{S} now meets in {v}.", "Venue change: {s} moves to {v}."),
        ("Where does {s} meet now?", "Which room is {s} in these days?"),
        ("Where did {s} meet before the venue change?", "Which room did {s} use to meet in?"),
        memory_type="event",
    ),
    UpdateFamily(
        "sunday-hours", "facility", "{x}", ("10am to 2pm", "11am to 4pm", "9am to 1pm", "noon to 5pm"),
        ("{S} opens {v} on Sundays.", "Sunday opening at {s}: {v}."),
        ("{S} now opens {v} on Sundays.", "New Sunday hours at {s}: {v}."),
        ("What are the Sunday hours at {s} now?", "When is {s} open on Sundays these days?"),
        ("What were the Sunday hours at {s} before the change?", "When did {s} open on Sundays previously?"),
    ),
    UpdateFamily(
        "allotments", "district", "allotment enquiries in {x}", (),
        ("{S} go to {v}.", "{v} handles {s}."),
        ("{v} has taken over {s}.", "{S} now go to {v}."),
        ("Who deals with {s} now?", "Who should I contact about {s} at the moment?"),
        ("Who dealt with {s} before the handover?", "Who used to handle {s}?"),
        value_slot="staff",
    ),
)

# -- abstention -----------------------------------------------------------------------------
_ABSENT_PLACES = ["Pinecrest", "Wolverton Abbey", "Glasshouse Quay", "Otterburn", "Catterick Fold", "Mistlethwaite",
                  "Ravenglass", "Shipton Moor"]
_FACILITY_Q = ["What time does {n} Library open on Saturdays?", "Who manages {n} Leisure Centre?",
               "Which district is {n} Community Hub in?", "How much does it cost to hire the main hall at {n} Community Hub?",
               "When is the book sale at {n} Library?"]
_DISTRICT_Q = ["Which day is recycling collected in {n}?", "Who is the elected member for {n}?",
               "What does a residents' parking permit cost in {n}?", "Where's the {n} food bank at the moment?"]
_ABSENT_FIRST = ["Anselm", "Blodwen", "Casimir", "Drusilla", "Evander", "Griselda", "Hyacinth", "Lysander"]
_ABSENT_LAST = ["Fairclough", "Mountjoy", "Penhaligon", "Rookwood", "Smallbone", "Twelvetrees", "Wolstenholme"]
_PERSON_Q = ["When is {p} on annual leave?", "How does {p} prefer to be contacted about urgent matters?",
             "Which site does {p} manage?", "Is {p} still handling allotment enquiries?"]
_OFF_TOPIC: list[tuple[str, list[str]]] = [
    ("How many strings does a cello have?", ["cello"]),
    ("What year did the Berlin Wall come down?", ["Berlin"]),
    ("Which grape is Chianti made from?", ["Chianti"]),
    ("How do you say thank you in Japanese?", ["Japanese"]),
    ("What is the atomic number of gold?", ["atomic"]),
    ("Who discovered penicillin?", ["penicillin"]),
    ("How long is a flight to Tokyo?", ["Tokyo"]),
    ("What's the offside rule in rugby?", ["rugby", "offside"]),
    ("How do I knit a scarf?", ["knit", "scarf"]),
    ("Which volcano buried Pompeii?", ["Pompeii", "volcano"]),
    ("What is the plural of octopus?", ["octopus"]),
    ("At what temperature should bread dough prove?", ["dough"]),
]


def _facility(rng: random.Random) -> tuple[str, list[str]]:
    name = rng.choice(_ABSENT_PLACES)
    return rng.choice(_FACILITY_Q).format(n=name), [name]


def _district(rng: random.Random) -> tuple[str, list[str]]:
    name = rng.choice(_ABSENT_PLACES)
    return rng.choice(_DISTRICT_Q).format(n=name), [name]


def _person(rng: random.Random) -> tuple[str, list[str]]:
    first, last = rng.choice(_ABSENT_FIRST), rng.choice(_ABSENT_LAST)
    return rng.choice(_PERSON_Q).format(p=f"{first} {last}"), [first, last]


def _ident(rng: random.Random) -> tuple[str, list[str]]:
    kind = rng.randrange(3)
    if kind == 0:
        ident = f"{rng.randint(19, 25)}/{rng.randint(0, 3999):05d}/FUL"
        return f"What's happening with planning application {ident}?", [ident]
    if kind == 1:
        ident = str(rng.randint(300000, 899999))
        return f"What is work order {ident} about?", [ident]
    ident = str(rng.randint(3000, 8999))
    return f"What do we know about bus {ident}?", [ident]


def _off_topic(rng: random.Random) -> tuple[str, list[str]]:
    question, terms = rng.choice(_OFF_TOPIC)
    return question, list(terms)


#: Unknown places, people and identifiers asked like real questions, then far-off topics.
ABSTAINERS: tuple[Abstainer, ...] = (_facility, _person, _ident, _district, _off_topic)
