"""The diary's changing facts and its unanswerable questions.

Things that change in a life and that an assistant gets told about: an acquaintance moves house,
changes car, retrains or changes diet; a subscription gets dearer; the window cleaner comes on a
different day; a weekly class moves. None of them touches an edge of the graph (the people they
are about are acquaintances outside it), so the multi-hop chains stay true. The question wordings
are the user's own ("these days", "before the move", "used to", "before they retrained").
"""

from __future__ import annotations

import random

from evals.memory._updates import Abstainer, UpdateFamily
from evals.memory.diary._families import new_ident
from evals.memory.diary._vocab import CARS, DIETS, JOBS, PRICES, STREETS, WEEKDAYS

__all__ = ["ABSTAINERS", "UPDATE_FAMILIES"]

UPDATE_FAMILIES: tuple[UpdateFamily, ...] = (
    UpdateFamily(
        "street", "acquaintance", "{x}", tuple(STREETS),
        ("{x} lives on {v}.", "{x}'s address: {v} (the flat above the launderette).", "{x} has a place on {v}, near the bakery."),
        ("{x} moved house; the new address is {v}.", "update: {x} is on {v} now, moved last month", "{x} has just moved to {v}."),
        ("Where does {x} live now?", "What's {x}'s address these days?", "Which street is {x} on at the moment?"),
        ("Where did {x} live before they moved?", "What was {x}'s old address?", "Which street was {x} on before the move?"),
    ),
    UpdateFamily(
        "car", "acquaintance", "{x}'s car", tuple(CARS),
        ("{x} drives {v}.", "{S}: {v}.", "{x} has {v}, always parked badly."),
        ("{x} got rid of the old car and drives {v} now.", "{x} has swapped cars; it's {v} these days."),
        ("What car does {x} drive now?", "What's {x} driving these days?"),
        ("What did {x} drive before the new car?", "Which car did {x} have before they swapped?"),
    ),
    UpdateFamily(
        "job", "acquaintance", "{x}", tuple(JOBS),
        ("{x} works as {v}.", "{x} is {v}.", "{x}: {v}, loves it"),
        ("{x} retrained and is now {v}.", "career change! {x} is {v} now"),
        ("What does {x} do for a living now?", "What's {x}'s job these days?"),
        ("What did {x} do before the career change?", "What was {x}'s job before they retrained?"),
    ),
    UpdateFamily(
        "diet", "acquaintance", "{x}", tuple(DIETS),
        ("{x} is {v}.", "cooking for {x}: {v}"),
        ("{x} has gone {v}.", "heads up, {x} is {v} now"),
        ("What does {x} eat these days?", "Any dietary stuff I should know for {x} now?"),
        ("What was {x}'s diet before the change?", "How did {x} eat before?"),
        memory_type="preference",
    ),
    UpdateFamily(
        "price", "brand", "{x}", tuple(PRICES),
        ("{x} costs {v} a month.", "paying {v}/month for {x}", "{x} subscription: {v} per month"),
        ("{x} went up to {v} a month.", "price rise: {x} is now {v}/month, ugh"),
        ("How much is {x} costing me now?", "What do I pay for {x} these days?"),
        ("What did {x} cost before the price rise?", "How much was {x} before it went up?"),
        order="up",
    ),
    UpdateFamily(
        "visit-day", "visit", "{x}", tuple(WEEKDAYS[:6]),
        ("{S} comes on {v}s.", "{S}: every {v}"),
        ("{S} is switching to {v}s from next week.", "{S} now comes on {v}s."),
        ("Which day does {s} come now?", "When's {s} these days?"),
        ("Which day did {s} come before the switch?", "What day was {s} originally?"),
        memory_type="event",
    ),
    UpdateFamily(
        "class-time", "class", "{x}", ("Mondays at 7pm", "Tuesdays at 6.30pm", "Wednesdays at 8pm",
                                       "Thursday lunchtimes", "Saturday mornings", "Sunday afternoons"),
        ("{S} is on {v}.", "{x}: {v}, don't book anything else then"),
        ("{S} has moved to {v}.", "schedule change: {s} is now {v}"),
        ("When is {s} now?", "What time is {s} these days?"),
        ("When was {s} before it moved?", "What slot did {s} use to be in?"),
        memory_type="event",
    ),
)

# -- abstention -----------------------------------------------------------------------------
_ABSENT_FIRST = ["Anneliese", "Bartosz", "Chinonso", "Dagny", "Esperanza", "Fionnuala", "Gediminas", "Hiroko",
                 "Itzel", "Jolanta", "Kwabena", "Liesbeth"]
_ABSENT_LAST = ["Abernathy-Cole", "Brzezinski", "Czerwinska", "Delacroix", "Espinoza", "Frobisher", "Grünewald",
                "Hadjimichael", "Iwasaki"]
_PERSON_Q = ["When's {p}'s birthday again?", "What does {p} do for work?", "Did I ever tell you where {p} lives?",
             "What's {p}'s partner called?", "Does {p} have any allergies?", "Any gift ideas for {p}?"]
_ABSENT_PETS = ["Bramblejack", "Snickerdoodle", "Professor Whiskers", "Marmalade", "Quasar", "Chutney", "Figaro",
                "Pumpernickel"]
_PET_Q = ["What breed is {n}?", "hey, when is {n} due for jabs?", "Who does {n} belong to?",
          "Which vet does {n} go to?", "How much food does {n} get?"]
_ABSENT_PLACES = ["the Gilded Pelican", "Saltwhistle Bakery", "Moonrake Cinema", "Quillon Spa", "Barnacle Bistro",
                  "Hollowmere Lido", "the Crooked Spoon", "Sparrowgrass Deli"]
_PLACE_Q = ["What time does {n} open on Sundays?", "Which part of town is {n} in?", "When did I last go to {n}?",
            "Who did I go to {n} with?"]
_IDENT_Q = {"order": "What was order {i}?", "flight": "When does flight {i} leave?",
            "booking": "What's booking ref {i} for?", "plate": "Whose car is {i}?"}
_OFF_TOPIC: list[tuple[str, list[str]]] = [
    ("How far away is the moon?", ["moon"]),
    ("Who wrote War and Peace?", ["War and Peace"]),
    ("What's the tallest mountain in South America?", ["South America"]),
    ("How do you convert Celsius to Fahrenheit?", ["Fahrenheit"]),
    ("Which planet has the most moons?", ["planet"]),
    ("What does a sommelier actually do?", ["sommelier"]),
    ("How many players are on a baseball team?", ["baseball"]),
    ("When was the printing press invented?", ["printing press"]),
    ("What's the square root of 196?", ["square root"]),
    ("Which ocean is the deepest?", ["ocean"]),
    ("What's the chemical symbol for tin?", ["chemical symbol"]),
    ("How do bees make honey?", ["bees", "honey"]),
]


def _person(rng: random.Random) -> tuple[str, list[str]]:
    first, last = rng.choice(_ABSENT_FIRST), rng.choice(_ABSENT_LAST)
    return rng.choice(_PERSON_Q).format(p=f"{first} {last}"), [first, last]


def _pet(rng: random.Random) -> tuple[str, list[str]]:
    name = rng.choice(_ABSENT_PETS)
    return rng.choice(_PET_Q).format(n=name), [name]


def _place(rng: random.Random) -> tuple[str, list[str]]:
    name = rng.choice(_ABSENT_PLACES)
    question = rng.choice(_PLACE_Q).format(n=name)
    return question, [name.removeprefix("the ")]


def _ident(rng: random.Random) -> tuple[str, list[str]]:
    kind = rng.choice(sorted(_IDENT_Q))
    ident = new_ident(rng, kind)
    return _IDENT_Q[kind].format(i=ident), [ident]


def _off_topic(rng: random.Random) -> tuple[str, list[str]]:
    question, terms = rng.choice(_OFF_TOPIC)
    return question, list(terms)


#: Unknown people, pets, places and identifiers asked like real questions, then far-off topics.
ABSTAINERS: tuple[Abstainer, ...] = (_person, _pet, _place, _ident, _off_topic)
