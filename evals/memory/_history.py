"""Kestrel Labs' changing facts and its unanswerable questions (generator version 2).

The changing facts sit outside the organisation graph of `_world` (offsites, connection pools,
canary shares, alert routing, sprint lengths, timeouts, review days, dashboards), so a
correction never contradicts a multi-hop chain. The abstention questions name people, systems
and identifiers Kestrel Labs does not have, or ask about things far from software work; the
generator checks that none of their key terms occurs in any memory.
"""

from __future__ import annotations

import random

from evals.memory._updates import Abstainer, UpdateFamily
from evals.memory._vocab import SERVICE_KINDS

__all__ = ["ABSTAINERS", "UPDATE_FAMILIES", "absent_ident"]

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")

UPDATE_FAMILIES: tuple[UpdateFamily, ...] = (
    UpdateFamily(
        "offsite", "team", "the {x} team offsite",
        ("Lisbon", "Porto", "Tallinn", "Ghent", "Kraków", "Bologna", "Bergen", "Valencia"),
        ("{S} is in {v} this year.", "This year's {x} team offsite will be held in {v}."),
        ("{S} moved to {v}.", "Change of plan: {s} is now in {v}."),
        ("Where is {s} now?", "Which city is {s} in, as things stand?"),
        ("Where was {s} planned before it moved?", "Which city was {s} originally booked in?"),
        memory_type="event",
    ),
    UpdateFamily(
        "pool", "service", "the connection pool of {x}", ("20", "40", "60", "80", "120", "160"),
        ("{S} is capped at {v} connections.", "We cap {s} at {v} connections."),
        ("{S} was raised to {v} connections.", "After the load test we set {s} to {v} connections."),
        ("How many connections does {s} allow now?", "What is the current cap on {s}?"),
        ("What was {s} capped at before it was raised?", "How many connections did {s} allow previously?"),
        order="up",
    ),
    UpdateFamily(
        "canary", "service", "canary releases of {x}", ("1%", "2%", "5%", "10%", "25%"),
        ("{S} get {v} of traffic.", "{S} start at {v} of traffic."),
        ("{S} now get {v} of traffic.", "We changed {s} to take {v} of traffic."),
        ("What share of traffic do {s} get now?", "How much traffic do {s} take at the moment?"),
        ("What share of traffic did {s} get before the change?", "How much traffic did {s} use to take?"),
        memory_type="procedure",
    ),
    UpdateFamily(
        "alerts", "team", "the {x} team's alerts", ("Opsgenie", "PagerDuty", "Grafana OnCall", "incident.io", "Splunk On-Call"),
        ("{S} go to {v}.", "{S} are routed through {v}."),
        ("{S} now go to {v}.", "{S} were moved over to {v}."),
        ("Where do {s} go now?", "Which tool receives {s} these days?"),
        ("Which tool handled {s} before the switch?", "Where did {s} go previously?"),
    ),
    UpdateFamily(
        "sprints", "team", "the {x} team", ("one-week", "two-week", "three-week", "four-week"),
        ("{S} runs {v} sprints.", "{S} plans in {v} sprints."),
        ("{S} switched to {v} sprints.", "{S} now runs {v} sprints."),
        ("How long are the {x} team's sprints now?", "What sprint length does {s} use currently?"),
        ("How long were the {x} team's sprints before they changed?", "What sprint length did {s} use to run?"),
        memory_type="procedure",
    ),
    UpdateFamily(
        "timeout", "service", "the request timeout of {x}", ("2 seconds", "5 seconds", "10 seconds", "30 seconds"),
        ("{S} is {v}.", "We set {s} to {v}."),
        ("{S} was lowered to {v}.", "{S} is now {v}."),
        ("What is {s} now?", "How long is {s} at the moment?"),
        ("What was {s} before it was lowered?", "What did {s} use to be?"),
        order="down",
    ),
    UpdateFamily(
        "review-day", "team", "the {x} team's design review", _DAYS,
        ("{S} is on {v}s.", "{S} happens every {v}."),
        ("{S} moved to {v}s.", "{S} is now held on {v}s."),
        ("Which day is {s} now?", "When does {s} happen these days?"),
        ("Which day was {s} on before it moved?", "When did {s} use to happen?"),
        memory_type="event",
    ),
    UpdateFamily(
        "dashboards", "service", "the dashboards of {x}", ("Grafana", "Datadog", "Kibana", "Honeycomb", "New Relic"),
        ("{S} live in {v}.", "{S} are kept in {v}."),
        ("{S} were migrated to {v}.", "{S} now live in {v}."),
        ("Where are {s} now?", "Which tool holds {s} today?"),
        ("Where were {s} kept before the migration?", "Which tool held {s} previously?"),
    ),
)

# -- abstention: names and topics Kestrel Labs never mentions -------------------------------
_ABSENT_FIRST = ["Gunnar", "Wilhelmina", "Thorsten", "Ludmila", "Cosimo", "Philippa", "Radomir", "Henrietta",
                 "Augustin", "Svetlana", "Benedikt", "Rosamund"]
_ABSENT_LAST = ["Wexley", "Okwuosa", "Bergkvist", "Pellegrino", "Tremaine", "Haverford", "Lindgren-Moss",
                "Szabados", "Quillfeather", "Oyarzun"]
_ABSENT_DOMAINS = ["telemetry", "kiosk", "lottery", "vending", "karaoke", "horoscope", "sauna", "trampoline",
                   "chatbot", "podcast", "greenhouse", "jukebox"]
_ABSENT_PERSON_Q = ["Which team is {P} on?", "Who does {P} report to?", "Which editor does {P} use?",
                    "When is {P} on leave?", "What merge style does {P} prefer?"]
_ABSENT_SERVICE_Q = ["Which team owns the {d} {k}?", "How do I restart the {d} {k}?",
                     "Who should I escalate to about the {d} {k}?", "What does the {d} {k} depend on?",
                     "Where is the {d} {k} hosted?"]
_OFF_TOPIC: list[tuple[str, list[str]]] = [
    ("How long should I boil an egg for a soft yolk?", ["egg", "yolk"]),
    ("What is the capital of Mongolia?", ["Mongolia"]),
    ("Who painted the ceiling of the Sistine Chapel?", ["Sistine"]),
    ("How many moons does Jupiter have?", ["Jupiter"]),
    ("What's a good recipe for banana bread?", ["banana"]),
    ("Which football club won the league last season?", ["football"]),
    ("How do I get red wine out of a carpet?", ["carpet"]),
    ("When is the best time to plant tulip bulbs?", ["tulip"]),
    ("What is the boiling point of ethanol?", ["ethanol"]),
    ("Who wrote the novel Middlemarch?", ["Middlemarch"]),
    ("How tall is Mount Kilimanjaro?", ["Kilimanjaro"]),
    ("What should I feed a pet tortoise?", ["tortoise"]),
]


def absent_ident(rng: random.Random) -> str:
    """An incident or error code of the usual shape (the generator checks it is unused)."""
    return f"INC-{rng.randint(10000, 99999)}" if rng.random() < 0.6 else f"E{rng.randint(1000, 9999)}"


def _person(rng: random.Random) -> tuple[str, list[str]]:
    first, last = rng.choice(_ABSENT_FIRST), rng.choice(_ABSENT_LAST)
    return rng.choice(_ABSENT_PERSON_Q).format(P=f"{first} {last}"), [first, last]


def _service(rng: random.Random) -> tuple[str, list[str]]:
    domain = rng.choice(_ABSENT_DOMAINS)
    return rng.choice(_ABSENT_SERVICE_Q).format(d=domain, k=rng.choice(SERVICE_KINDS)), [domain]


def _ident(rng: random.Random) -> tuple[str, list[str]]:
    ident = absent_ident(rng)
    return rng.choice(["Anything on {i}?", "What do we know about {i}?", "Context for {i}, please."]).format(i=ident), [ident]


def _off_topic(rng: random.Random) -> tuple[str, list[str]]:
    question, terms = rng.choice(_OFF_TOPIC)
    return question, list(terms)


#: Hard negatives first (an unknown person, system or identifier asked like a real question),
#: then questions far from the corpus.
ABSTAINERS: tuple[Abstainer, ...] = (_person, _service, _ident, _off_topic)
