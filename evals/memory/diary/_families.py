"""The diary's memories outside the graph: identifiers, plain facts and everyday chatter.

Identifiers have the shapes of a private life, none used by the other generators: online order
numbers (``204-7781932-5530118``), flight codes (``TP1071``), booking references (``Q7XK2M``),
licence plates (``KM19 XRT``), parcel tracking numbers (``1Z9W487A0355127741``,
``RM482913057GB``) and Wi-Fi network names (``TP-Link_7C4A``). Each asked identifier has
near-duplicates one edit away in memories of the same family. Plain families share keywords with
their questions; chatter, lists and conversation summaries answer nothing.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from evals.memory.diary._vocab import (
    AIRLINES,
    BRANDS,
    DISHES,
    FILMS,
    FOODS,
    GIFTS,
    HOTELS,
    ITEMS,
    MONTHS,
    PETS,
    SHOPS,
    WEEKDAYS,
    WIFI_PREFIXES,
)
from evals.memory.diary._world import World, start

__all__ = ["EDGE_QUESTION_RELATIONS", "IDENTIFIER_RE", "IDENT_KINDS", "PLAIN_BRANDS", "PLAIN_FAMILIES", "UPDATE_BRANDS", "Fact", "chatter", "date_text",
           "edge_question", "ident_kind", "ident_memory", "ident_question", "identifiers", "near_duplicate",
           "new_ident"]

IDENT_KINDS = ("order", "flight", "booking", "plate", "tracking", "wifi")

_WIFI = "|".join(re.escape(p) for p in WIFI_PREFIXES)
#: The identifiers of this corpus (the texts hold no other token of these shapes).
IDENTIFIER_RE = re.compile(
    r"\b(?:1Z[0-9A-Z]{16}"
    r"|[A-Z]{2}\d{9}GB"
    r"|\d{3}-\d{7}-\d{7}"
    rf"|(?:{_WIFI})[0-9A-F]{{4}}"
    r"|[A-Z]{2}\d{2} [A-Z]{3}"
    r"|[A-Z]{2}\d{3,4}"
    r"|(?=[A-Z0-9]{6}\b)(?=(?:[A-Z]*\d){2})(?=(?:\d*[A-Z]){3})[A-Z0-9]{6}"
    r")\b"
)
_KIND_RES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tracking", re.compile(r"1Z[0-9A-Z]{16}|[A-Z]{2}\d{9}GB")),
    ("order", re.compile(r"\d{3}-\d{7}-\d{7}")),
    ("wifi", re.compile(rf"(?:{_WIFI})[0-9A-F]{{4}}")),
    ("plate", re.compile(r"[A-Z]{2}\d{2} [A-Z]{3}")),
    ("flight", re.compile(r"[A-Z]{2}\d{3,4}")),
    ("booking", re.compile(r"[A-Z0-9]{6}")),
)

#: Brands with a plain subscription fact; the others change price in fact histories.
PLAIN_BRANDS = BRANDS[: len(BRANDS) // 2]
UPDATE_BRANDS = BRANDS[len(BRANDS) // 2:]

_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O, Q: as on plates and booking references
_DIGITS = "0123456789"
_HEX = "0123456789ABCDEF"


@dataclass(frozen=True)
class Fact:
    text: str
    memory_type: str
    unique: tuple[str, ...]
    question: str | None = None


def identifiers(text: str) -> list[str]:
    """Every identifier of this corpus in `text`, in order."""
    return [m.group(0) for m in IDENTIFIER_RE.finditer(text)]


def ident_kind(ident: str) -> str:
    for kind, pattern in _KIND_RES:
        if pattern.fullmatch(ident):
            return kind
    raise ValueError(f"not a diary identifier: {ident!r}")


# -- dates, written the many ways people write them -----------------------------------------
def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def date_text(rng: random.Random, day: int | None = None, month: int | None = None) -> str:
    """A date as a note would hold it: "14 March", "March 14th", "14/03", "2024-03-14", "14.3", ..."""
    day = rng.randint(1, 28) if day is None else day
    month = rng.randrange(12) if month is None else month
    name = MONTHS[month]
    forms = [f"{day} {name}", f"{name} {_ordinal(day)}", f"the {_ordinal(day)} of {name}", f"{day:02d}/{month + 1:02d}",
             f"{day} {name[:3]}", f"{name[:3]} {day}", f"{rng.choice([2023, 2024, 2025])}-{month + 1:02d}-{day:02d}",
             f"{day}.{month + 1}"]
    return rng.choice(forms)


def _time(rng: random.Random) -> str:
    hour, minute = rng.randint(6, 21), rng.choice([0, 5, 15, 20, 30, 40, 45, 55])
    return rng.choice([f"{hour:02d}:{minute:02d}", f"{hour % 12 or 12}.{minute:02d}{'am' if hour < 12 else 'pm'}"])


# -- identifiers ----------------------------------------------------------------------------
def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def new_ident(rng: random.Random, kind: str) -> str:
    if kind == "order":
        return f"{rng.randint(100, 999)}-{_chars(rng, _DIGITS, 7)}-{_chars(rng, _DIGITS, 7)}"
    if kind == "flight":
        return f"{rng.choice(AIRLINES)}{rng.randint(100, 9999)}"
    if kind == "booking":
        while True:
            ref = _chars(rng, _LETTERS + "23456789", 6)
            if sum(c.isdigit() for c in ref) >= 2 and sum(c.isalpha() for c in ref) >= 3:
                return ref
    if kind == "plate":
        return f"{_chars(rng, _LETTERS, 2)}{rng.randint(10, 75)} {_chars(rng, _LETTERS, 3)}"
    if kind == "tracking":
        if rng.random() < 0.5:
            return f"1Z{_chars(rng, _LETTERS + _DIGITS, 6)}{_chars(rng, _DIGITS, 10)}"
        return f"{_chars(rng, _LETTERS, 2)}{_chars(rng, _DIGITS, 9)}GB"
    if kind == "wifi":
        return f"{rng.choice(WIFI_PREFIXES)}{_chars(rng, _HEX, 4)}"
    raise ValueError(f"unknown identifier kind {kind!r}")


def _edit(rng: random.Random, ident: str, positions: list[int]) -> str:
    """One character at one of `positions` replaced by another of its class, or two adjacent swapped."""
    chars = list(ident)
    positions = [i for i in positions if chars[i].isalnum()]
    swaps = [i for i in positions if i + 1 in positions and chars[i] != chars[i + 1]
             and chars[i].isdigit() == chars[i + 1].isdigit()]
    if swaps and rng.random() < 0.35:
        i = rng.choice(swaps)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    else:
        i = rng.choice(positions)
        alphabet = _DIGITS if chars[i].isdigit() else _LETTERS
        chars[i] = rng.choice([c for c in alphabet if c != chars[i]])
    return "".join(chars)


def near_duplicate(rng: random.Random, kind: str, ident: str) -> str:
    """An identifier of the same kind one small edit away."""
    if kind == "order":
        return _edit(rng, ident, list(range(4, len(ident))) if rng.random() < 0.5 else list(range(12, len(ident))))
    if kind == "flight":
        if rng.random() < 0.3:
            return rng.choice([a for a in AIRLINES if a != ident[:2]]) + ident[2:]
        return _edit(rng, ident, list(range(3, len(ident))))
    if kind == "booking":
        return _edit(rng, ident, list(range(6)))
    if kind == "plate":
        return _edit(rng, ident, [0, 1, 3, 5, 6, 7])
    if kind == "tracking":
        digits = [i for i in range(len(ident) - 10, len(ident))] if ident.startswith("1Z") else list(range(2, 11))
        return _edit(rng, ident, digits)
    prefix, suffix = ident[:-4], ident[-4:]
    i = rng.randrange(4)
    return prefix + suffix[:i] + rng.choice([c for c in _HEX if c != suffix[i]]) + suffix[i + 1:]


def _someone(rng: random.Random, w: World) -> str:
    return rng.choice([*w.core, *w.acquaintances])


def ident_memory(rng: random.Random, w: World, kind: str, ident: str) -> Fact:
    item, shop = rng.choice(ITEMS)[0], rng.choice(SHOPS)
    when, person, city = date_text(rng), _someone(rng, w), rng.choice(w.cities)
    if kind == "order":
        text = rng.choice([
            f"Order {ident}: {item} from {shop}, £{rng.randint(8, 240)}.",
            f"{start(shop)} order {ident} — {item}, arriving {when}",
            f"user returned order {ident} ({item}); refund should land within five working days",
            f"Still waiting on order {ident} from {shop}. It was meant to arrive {when}.",
        ])
    elif kind == "flight":
        text = rng.choice([
            f"Flight {ident} to {city} on {when}, departs {_time(rng)}, seat {rng.randint(3, 38)}{rng.choice('ACDF')}.",
            f"{city} trip: outbound {ident}, {when}, {_time(rng)} from Terminal {rng.randint(1, 5)}",
            f"user is booked on {ident} ({when}); one checked bag included",
            f"{person} lands on {ident} at {_time(rng)} on {when}. The user offered a lift from the airport.",
        ])
    elif kind == "booking":
        text = rng.choice([
            f"Booking ref {ident}: {rng.choice(HOTELS)}, {rng.randint(2, 9)} nights from {when}.",
            f"{start(rng.choice(HOTELS))} confirmation {ident} (paid, free cancellation until {when})",
            f"Restaurant booking for {person}'s birthday dinner, ref {ident}: table for {rng.randint(2, 10)} at {_time(rng)}.",
            f"Car hire for the {city} trip, reference {ident}; pick-up at the airport desk.",
        ])
    elif kind == "plate":
        text = rng.choice([
            f"{person}'s car reg is {ident}.",
            f"The hire car in {city} was {ident}; the user scratched the bumper, photos taken.",
            f"Visitor parking permit registered to {ident} for when {person} comes round.",
            f"Someone in {ident} keeps parking across the user's drive.",
        ])
    elif kind == "tracking":
        text = rng.choice([
            f"Tracking number {ident}: {item} from {shop}, due {when}.",
            f"Parcel {ident} ({shop}) is stuck at the depot, apparently.",
            f"{item} shipped — tracking {ident}",
            f"The parcel for {person} went out with tracking {ident}.",
        ])
    else:
        text = rng.choice([
            f"Wi-Fi at {person}'s place: {ident}, password on the fridge.",
            f"The wifi at {rng.choice(w.venues)} is {ident}; password is on the receipt.",
            f"{start(rng.choice(HOTELS))} guest wifi: {ident}",
            f"{person}'s network is called {ident} (password: {rng.choice(['sunflower', 'bluebottle', 'kettle'])}{rng.randint(10, 99)})",
        ])
    return Fact(text, "event" if kind in ("flight", "booking", "order", "tracking") else "fact", ("ident", ident))


_IDENT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "order": ("What was order {i}?", "Remind me what I bought in order {i}.", "Did order {i} ever turn up?",
              "hey, what's order {i} for?"),
    "flight": ("When does flight {i} leave?", "Which trip is {i} for?", "What do I have on {i}?",
               "Remind me about flight {i}."),
    "booking": ("What's booking ref {i} for?", "Which reservation is {i}?", "Remind me what {i} is, some booking?"),
    "plate": ("Whose car is {i}?", "What do I know about the car {i}?", "the reg {i}, anything on that?"),
    "tracking": ("What's in parcel {i}?", "Which delivery is tracking number {i}?", "Where's parcel {i} from?"),
    "wifi": ("Whose wifi is {i}?", "Where's the {i} network?", "What did I note about the {i} wifi?"),
}


def ident_question(rng: random.Random, kind: str, ident: str) -> str:
    return rng.choice(_IDENT_QUESTIONS[kind]).format(i=ident)


# -- plain families: each shares keywords with its question --------------------------------
def _birthday(rng: random.Random, w: World) -> Fact:
    p = _someone(rng, w)
    when = date_text(rng)
    text, question = rng.choice([
        (f"{p}'s birthday is {when}.", f"When is {p}'s birthday?"),
        (f"birthday: {p}, {when}", f"hey, when's {p}'s birthday again?"),
        (f"Don't forget {p}'s birthday on {when}. They like a card, not a text.", f"What date is {p}'s birthday?"),
    ])
    return Fact(text, "fact", ("birthday", p), question)


def _dislike(rng: random.Random, w: World) -> Fact:
    p, food = _someone(rng, w), rng.choice(FOODS)
    text, question = rng.choice([
        (f"{p} hates {food}.", f"What food does {p} hate?"),
        (f"{p} can't stand {food} — leave it out when they come for dinner", f"What should I leave out when {p} comes for dinner?"),
        (f"heads up: {p} is not a fan of {food}", f"Is {p} a fan of {food}?"),
    ])
    return Fact(text, "preference", ("dislike", p), question)


def _allergy(rng: random.Random, w: World) -> Fact:
    p = _someone(rng, w)
    allergen = rng.choice(["peanuts", "shellfish", "latex", "cats", "wasp stings", "sesame", "tree nuts"])
    text, question = rng.choice([
        (f"{p} is allergic to {allergen}.", f"What is {p} allergic to?"),
        (f"Allergy note: {p}, {allergen} (carries an EpiPen)", f"Does {p} have an allergy I should know about?"),
    ])
    return Fact(text, "fact", ("allergy", p), question)


def _gift(rng: random.Random, w: World) -> Fact:
    p, gift = _someone(rng, w), rng.choice(GIFTS)
    text, question = rng.choice([
        (f"Gift idea for {p}: {gift}.", f"Any gift ideas for {p}?"),
        (f"{p} would love {gift} as a present — they mentioned it twice", f"What present would {p} love?"),
    ])
    return Fact(text, "preference", ("gift", p), question)


def _subscription(rng: random.Random, w: World) -> Fact:
    brand = rng.choice(PLAIN_BRANDS)
    price, day = rng.choice(["£3.49", "£6.49", "£9.50", "£13.00", "£15.99", "£24.00"]), rng.randint(1, 28)
    text, question = rng.choice([
        (f"{brand} subscription: {price} a month, renews on the {_ordinal(day)}.", f"When does my {brand} subscription renew?"),
        (f"{brand} renews on the {_ordinal(day)} every month ({price}).", f"What day does {brand} renew?"),
        (f"the user wants to cancel {brand} before the next renewal on the {_ordinal(day)}", f"When's the next {brand} renewal?"),
    ])
    return Fact(text, "fact", ("subscription", brand), question)


def _purchase(rng: random.Random, w: World) -> Fact:
    (bought, name), shop = rng.choice(ITEMS), rng.choice(SHOPS)
    when, price = date_text(rng), rng.randint(12, 480)
    text, question = rng.choice([
        (f"Bought {bought} from {shop} on {when} for £{price}.", f"Where did I buy the {name}?"),
        (f"The {name} came from {shop} ({when}, £{price}); receipt in the email.", f"Where's the receipt for the {name}?"),
        (f"user bought {bought} on {when} — two-year warranty", f"When did I buy the {name}?"),
    ])
    return Fact(text, "event", ("purchase", name), question)


def _recipe(rng: random.Random, w: World) -> Fact:
    dish, ingredients, oven, minutes = rng.choice(DISHES)
    cook = f"oven at {oven}, {minutes} min" if oven else f"about {minutes} minutes on the hob"
    p = _someone(rng, w)
    text, question = rng.choice([
        (f"Recipe the user likes — {dish}: {ingredients}; {cook}.", f"What's in my {dish} recipe?"),
        (f"{dish} (from {p}'s recipe): {ingredients}. {cook}", f"What goes into {p}'s {dish}?"),
        (f"{dish}: {cook}. Ingredients: {ingredients}.", f"How long does the {dish} take to cook?"),
    ])
    return Fact(text, "procedure", ("recipe", dish), question)


def _appointment(rng: random.Random, w: World) -> Fact:
    practice = rng.choice(w.practices)
    who = rng.choice(w.clinician_forms(practice))
    when, time = date_text(rng), _time(rng)
    text, question = rng.choice([
        (f"Appointment with {who} on {when} at {time}.", f"When's my appointment with {who}?"),
        (f"{w.called[practice]} appointment: {when}, {time}, with {who}", f"When am I next seeing {who}?"),
    ])
    return Fact(text, "event", ("appointment", practice), question)


def _trip(rng: random.Random, w: World) -> Fact:
    city, hotel = rng.choice(w.cities), rng.choice(HOTELS)
    text, question = rng.choice([
        (f"Trip to {city}: {date_text(rng)} to {date_text(rng)}, staying at {hotel}.", f"Where am I staying in {city}?"),
        (f"{city} trip — hotel is {hotel}, breakfast included", f"Which hotel did I book for the {city} trip?"),
        (f"user is going to {city} in {rng.choice(MONTHS)} for a wedding; staying at {hotel}", f"Where am I staying for the wedding in {city}?"),
    ])
    return Fact(text, "event", ("trip", city), question)


def _pet_food(rng: random.Random, w: World) -> Fact:
    pet = rng.choice(w.pets)
    n, food = rng.randint(1, 3), rng.choice(["kibble", "wet food", "pellets", "seed mix", "the renal diet food"])
    text, question = rng.choice([
        (f"{pet} gets {n} scoop{'s' if n > 1 else ''} of {food} twice a day.", f"How many scoops of food does {pet} get?"),
        (f"{pet}'s food: {food}, {n} scoop{'s' if n > 1 else ''} morning and evening (no treats after 8pm!)",
         f"What food does {pet} eat?"),
    ])
    return Fact(text, "procedure", ("pet_food", pet), question)


def _loan(rng: random.Random, w: World) -> Fact:
    p = _someone(rng, w)
    thing = rng.choice(["camping stove", "power drill", "tent pegs", "pasta machine", "hedge trimmer", "ladder",
                        "projector screen", "baby monitor", "ski jacket", "cool box"])
    text, question = rng.choice([
        (f"Lent {p} the {thing} on {date_text(rng)}.", f"Who has my {thing}?"),
        (f"{p} still has the user's {thing} — borrowed it in {rng.choice(MONTHS)}", f"Who borrowed the {thing}?"),
    ])
    return Fact(text, "event", ("loan", thing), question)


_PREFERENCES: tuple[tuple[str, str, str], ...] = (
    ("aisle", "Prefers the aisle seat on long flights.", "Do I prefer the aisle seat on long flights?"),
    ("reminders", "Wants reminders the evening before, not on the morning of.", "When do I want my reminders, evening or morning?"),
    ("milk", "Takes oat milk in coffee, no sugar.", "How do I take my coffee?"),
    ("texts", "Would rather get a text than a phone call from unknown numbers.", "Do I prefer a text or a phone call?"),
    ("steak", "likes steak medium-rare", "How do I like my steak?"),
    ("tea", "User drinks green tea after lunch, never black tea.", "Which tea do I drink after lunch?"),
    ("music", "Music while working: instrumental only, no lyrics.", "What music do I like while working?"),
    ("summary", "They want weekly summaries sent on Sunday evenings, kept short.", "When should the weekly summaries be sent?"),
    ("cinema", "Likes the front rows at the cinema.", "Where do I like to sit at the cinema?"),
    ("hotel", "Always asks for a quiet hotel room away from the lift.", "What kind of hotel room do I ask for?"),
)


def _preference(rng: random.Random, w: World) -> Fact:
    key, text, question = rng.choice(_PREFERENCES)
    return Fact(text, "preference", ("preference", key), question)


PLAIN_FAMILIES: dict[str, Callable[[random.Random, World], Fact]] = {
    "birthday": _birthday, "dislike": _dislike, "allergy": _allergy, "gift": _gift, "subscription": _subscription,
    "purchase": _purchase, "recipe": _recipe, "appointment": _appointment, "trip": _trip, "pet_food": _pet_food,
    "loan": _loan, "preference": _preference,
}

#: Plain questions about one edge of the graph (the memory is the edge's own, list or not).
_EDGE_QUESTIONS: dict[str, tuple[str, ...]] = {
    "works": ("Where does {a} work?", "Which company does {a} work for?"),
    "meets": ("Where does {a} meet?", "Where are {a} sessions held?"),
    "runs": ("Who runs {a}?", "Who organises {a}?"),
    "owner": ("Who does {a} the {sp} belong to?", "Whose {sp} is {a}?"),
    "based": ("Where is {a} based?", "Where are the headquarters of {a}?"),
    "vet": ("Where is {a} registered for check-ups?", "Which practice is {a} registered at?"),
}
EDGE_QUESTION_RELATIONS = frozenset(_EDGE_QUESTIONS)


def edge_question(rng: random.Random, relation: str, entity: str) -> str:
    return rng.choice(_EDGE_QUESTIONS[relation]).format(a=entity, sp=PETS.get(entity, ""))


# -- chatter, lists and conversation summaries: noise that answers nothing -------------------
_CHATTER = (
    "user had a rough week: deadline stress, skipped the gym twice",
    "{P} sent a voice note about the {film} finale; the user hasn't watched it yet.",
    "user mentioned {pet} knocked a glass off the table again lol",
    "Talked about {P}'s new haircut. Apparently it's “a bold choice”.",
    "Note to self from the user: call {P} back about the {M} weekend.",
    "They watched {film} with {P} on {W} and both fell asleep halfway through.",
    "user is thinking about learning the accordion. again.",
    "{P} recommended a podcast about shipwrecks; the user says it's oddly relaxing.",
    "Weather moaning: it rained all weekend and the barbecue at {P}'s was called off.",
    "{P} and {P2} are coming round for dinner on {date}.",
    "remind the user to water the tomatoes on {W}",
    "User went to {venue} with {P}; the coffee was “fine, not great”.",
    "The user laughed about {P} getting lost on the way to {venue}.",
    "“I swear {pet} understands every word,” the user said.",
    "mood check-in: good day, long walk around {area}",
    "They binged {film} this weekend; favourite character is the grumpy detective.",
    "User found an old school photo of {P} and sent it to the group chat.",
    "Group chat drama: {P} and {P2} argued about pineapple on pizza for an hour.",
    "user wants to try the new ramen place in {area}",
    "Rainy {W}; the user stayed in and made {dish}.",
    "{P} is training for a triathlon and won't stop talking about it.",
    "The user is annoyed that {brand} raised its prices again.",
    "user says {P} gives the best hugs. noted.",
    "Feeling under the weather today, cancelled plans with {P}.",
    "{P2} asked whether the user still has the wedding photos from {M}.",
    "User's plant (a fern called Gerald) is finally growing again.",
    "{P} is moving flats next month and needs help carrying boxes on {W}.",
    "They went to a gig with {P} on {date}; ears still ringing.",
    "user tried {dish} at {venue} and wants the recipe",
    "The neighbours' builders start at 7am on {W}s, which the user hates.",
    "{pet} had a bath and sulked for the rest of the day.",
    "user bought too many lemons. again. needs lemon recipes",
    "{P} might get a puppy; the user is campaigning for a greyhound.",
    "They finished reading a long novel about a lighthouse keeper and loved the ending.",
    "User lost their umbrella somewhere near {venue}.",
    "{P} won the pub quiz at {venue} with a question about volcanoes... no wait, about rivers.",
    "user's step goal is 9,000 a day; mostly hits it on {W}s",
    "{P} and the user are planning a picnic in {area} if the weather holds on {date}.",
)

_LISTS = (
    "Shopping list (from chat): oat milk, eggs, {food}, bin bags, batteries, {food2}.",
    "To-do from today's chat: renew {brand}, return the {item}, book {pet}'s nail trim, text {P} back.",
    "Packing list for {city}: adapter, sunscreen, the good walking shoes, a present for {P}.",
    "Things to ask {P} next time: the name of that bakery, how the new job is going, whether {pet} is okay.",
    "Ideas for {P2}'s leaving do: karaoke, a picnic in {area}, or dinner at {venue}.",
    "weekend plan: sat - market, laundry, call {P}. sun - long run, meal prep ({dish})",
)

_SUMMARIES = (
    "Conversation summary ({date}): the user vented about the train strikes, asked for a {dish} recipe, and wondered "
    "whether to repaint the hallway. Mentioned {P} is stressed about exams. No decisions made.",
    "Long chat about holidays. Undecided between {city} and {city2}; budget about £{n}00; {P} might come along; "
    "the user wants somewhere with good food and a beach and will decide by {M}.",
    "Summary: user is trying to sleep better: no screens after 10, less coffee, a walk at lunch. Also asked for "
    "film suggestions (liked {film}) and complained about {brand} crashing.",
    "Catch-up ({date}). Work has been intense; the user is proud of a presentation that went well. {P} and {P2} "
    "are organising a reunion in {M}. Reminder requested for {pet}'s flea treatment.",
    "Recap of a long evening chat: money worries (car repair, dentist bill), then happier stuff: {P}'s baby news, "
    "a possible trip to {city}, and a plan to learn to make {dish} properly.",
    "Today's summary: the user talked through a disagreement with {P} about splitting bills, decided to raise it "
    "calmly on {W}, and asked me to remind them to buy {food}.",
)


def chatter(rng: random.Random, w: World) -> Fact:
    p, p2 = rng.sample([*w.core, *w.acquaintances], 2)
    city, city2 = rng.sample(w.cities, 2)
    kind = rng.choices(["chat", "list", "summary"], [8, 2, 2])[0]
    template = rng.choice({"chat": _CHATTER, "list": _LISTS, "summary": _SUMMARIES}[kind])
    food, food2 = rng.sample(FOODS, 2)
    text = template.format(
        P=p, P2=p2, pet=rng.choice(w.pets), film=rng.choice(FILMS), M=rng.choice(MONTHS), W=rng.choice(WEEKDAYS),
        date=date_text(rng), venue=rng.choice(w.venues), area=rng.choice(w.areas), dish=rng.choice(DISHES)[0],
        brand=rng.choice(BRANDS), food=food, food2=food2, item=rng.choice(ITEMS)[1], city=city, city2=city2,
        n=rng.randint(6, 30))
    memory_type = {"chat": "event", "list": "event", "summary": "summary"}[kind]
    return Fact(text[:1].upper() + text[1:] if kind != "chat" else text, memory_type, ("chat", text))
