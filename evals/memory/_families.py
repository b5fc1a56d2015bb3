"""Memory families outside the world graph: identifiers, procedures, preferences, decisions,
tickets, leave, stand-ups and office chatter. Each returns the memory text, its type, a
uniqueness key (so a question's answer stays the only memory of its kind) and, where it can
be asked about plainly, a question that shares keywords with it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from evals.memory._vocab import (
    CHITCHAT,
    DATACENTERS,
    DECISIONS,
    ERROR_MEANINGS,
    HOST_ROLES,
    INCIDENT_CAUSES,
    INCIDENT_FIXES,
    INCIDENT_SYMPTOMS,
    MONTHS,
    PACKAGES,
    PIN_REASONS,
    PREFERENCES,
    PROCEDURES,
    ROOMS,
    TICKET_WORK,
)
from evals.memory._world import World, cap

__all__ = ["IDENT_KINDS", "PLAIN_FAMILIES", "Fact", "Registry", "chitchat", "ident_memory", "ident_question", "near_duplicate", "new_ident"]

IDENT_KINDS = ("incident", "error", "pin", "host")
_IDENT_QUESTIONS = ["{i}?", "Anything on {i}?", "What do we know about {i}?", "Notes on {i}?",
                    "Context for {i}, please.", "Tell me about {i}.", "{i} — what was that?"]
_TOPICS = ["observability", "property-based testing", "SQLite internals", "Rust for Python developers",
           "incident command", "cost-aware autoscaling", "accessibility audits", "typed Python"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


@dataclass(frozen=True)
class Fact:
    text: str
    memory_type: str
    unique: tuple[str, ...]
    question: str | None = None


class Registry:
    """Every identifier and uniqueness key handed out, so nothing repeats by accident."""

    def __init__(self) -> None:
        self.identifiers: set[str] = set()
        self.facts: set[tuple[str, ...]] = set()
        self.texts: set[str] = set()


def _digits(rng: random.Random, number: str) -> str:
    """Change one digit, or swap two adjacent different digits (the typo a person makes)."""
    chars = list(number)
    pairs = [i for i in range(len(chars) - 1) if chars[i] != chars[i + 1] and not (i == 0 and chars[1] == "0")]
    if pairs and rng.random() < 0.3:
        i = rng.choice(pairs)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    else:
        i = rng.randrange(len(chars))
        chars[i] = rng.choice([d for d in "0123456789" if d != chars[i] and (i or d != "0")])
    return "".join(chars)


def new_ident(rng: random.Random, kind: str) -> str:
    if kind == "incident":
        return f"INC-{rng.randint(10000, 99999)}"
    if kind == "error":
        return f"E{rng.randint(1000, 9999)}"
    if kind == "pin":
        return f"{rng.choice(PACKAGES)}=={rng.randint(1, 9)}.{rng.randint(0, 19)}.{rng.randint(0, 12)}"
    if kind == "host":
        return f"{rng.choice(HOST_ROLES)}-{rng.randint(1, 39):02d}.{rng.choice(sorted(DATACENTERS))}"
    raise ValueError(f"unknown identifier kind {kind!r}")


def near_duplicate(rng: random.Random, kind: str, ident: str) -> str:
    """An identifier of the same kind one small edit away."""
    if kind == "incident":
        return "INC-" + _digits(rng, ident[4:])
    if kind == "error":
        return "E" + _digits(rng, ident[1:])
    if kind == "pin":
        package, version = ident.split("==")
        parts = version.split(".")
        i = rng.randrange(3)
        parts[i] = str(max(0, int(parts[i]) + rng.choice([-1, 1, 2]))) if parts[i] != "0" else "1"
        return f"{package}=={'.'.join(parts)}"
    role_num, region = ident.split(".")
    role, num = role_num.split("-")
    if rng.random() < 0.6:
        return f"{role}-{_digits(rng, num)}.{region}"
    return f"{role}-{num}.{rng.choice([r for r in sorted(DATACENTERS) if r != region])}"


def ident_memory(rng: random.Random, w: World, kind: str, ident: str) -> Fact:
    s = rng.choice(w.services)
    if kind == "incident":
        sym, cause, fix = rng.choice(INCIDENT_SYMPTOMS), rng.choice(INCIDENT_CAUSES), rng.choice(INCIDENT_FIXES)
        text = rng.choice([
            f"{ident}: {sym} in {s}, caused by {cause}; fixed by {fix}.",
            f"Postmortem for {ident}: {s} saw {sym} after {cause}. We recovered by {fix}.",
            f"{ident} (SEV{rng.randint(1, 3)}): {sym} on {s}. Root cause: {cause}.",
        ])
        return Fact(text, "event", ("ident", ident))
    if kind == "error":
        meaning = rng.choice(ERROR_MEANINGS)
        text = rng.choice([
            f"Error {ident} from {s} means {meaning}.",
            f"If {s} logs {ident}, {meaning}.",
            f"{ident} in the logs of {s}: {meaning}; retry only after checking the dashboard.",
        ])
        return Fact(text, "fact", ("ident", ident))
    if kind == "pin":
        reason = rng.choice(PIN_REASONS)
        text = rng.choice([
            f"{cap(s)} is pinned to {ident} because {reason}.",
            f"Keep {ident} in the lockfile of {s}: {reason}.",
            f"{ident} is the last version that works with {s}; {reason}.",
        ])
        return Fact(text, "fact", ("ident", ident))
    month = rng.choice(MONTHS)
    text = rng.choice([
        f"{ident} was rebuilt on {rng.randint(1, 28)} {month} after {rng.choice(INCIDENT_CAUSES)}.",
        f"{ident} is scheduled for decommissioning in {month}; its workloads move to the new cluster.",
        f"{ident} had its kernel patched during the {month} maintenance window.",
        f"{ident} holds the read replicas for {s} until the {month} migration.",
    ])
    return Fact(text, "event", ("ident", ident))


def ident_question(rng: random.Random, ident: str) -> str:
    return rng.choice(_IDENT_QUESTIONS).format(i=ident)


# -- plain families: each shares keywords with its question -----------------------------------
def _procedure(rng: random.Random, w: World) -> Fact:
    key, task, steps = rng.choice(PROCEDURES)
    s = rng.choice(w.services)
    task = task.format(S=s)
    text = rng.choice([f"To {task}, {rng.choice(steps)}.", f"Runbook: to {task}, {rng.choice(steps)}."])
    question = rng.choice([f"How do I {task}?", f"What are the steps to {task}?"])
    return Fact(text, "procedure", ("procedure", key, s), question)


def _preference(rng: random.Random, w: World) -> Fact:
    key, phrases, question = rng.choice(PREFERENCES)
    p = rng.choice(w.people)
    text = rng.choice([f"{p} {rng.choice(phrases)}.", f"Worth knowing: {p} {rng.choice(phrases)}."])
    return Fact(text, "preference", ("preference", key, p), question.format(P=p))


def _decision(rng: random.Random, w: World) -> Fact:
    _, change, reasons = rng.choice(DECISIONS)
    change = change.format(S=rng.choice(w.services))
    month = rng.choice(MONTHS)
    text = rng.choice([f"In {month} we decided to {change} because {rng.choice(reasons)}.",
                       f"Decision ({month}): {change}, since {rng.choice(reasons)}."])
    question = rng.choice([f"Why did we decide to {change}?", f"What was the reason to {change}?"])
    return Fact(text, "fact", ("decision", change), question)


def _ticket(rng: random.Random, w: World) -> Fact:
    _, work = rng.choice(TICKET_WORK)
    work = work.format(S=rng.choice(w.services))
    ticket = f"{rng.choice(['PLAT', 'OPS', 'CORE'])}-{rng.randint(100, 9999)}"
    p = rng.choice(w.people)
    text = rng.choice([f"{ticket} tracks {work}; {p} picked it up.", f"{p} is assigned {ticket}, which covers {work}."])
    return Fact(text, "event", ("ticket", work), f"Who is working on {work}?")


def _leave(rng: random.Random, w: World) -> Fact:
    p = rng.choice(w.people)
    month = rng.choice(MONTHS)
    start = rng.randint(1, 20)
    text = rng.choice([f"{p} is on leave from {start} to {start + rng.randint(3, 8)} {month}.",
                       f"{p} will be out of office for two weeks starting {start} {month}."])
    return Fact(text, "event", ("leave", p), rng.choice([f"When is {p} on leave?", f"When will {p} be out of office?"]))


def _standup(rng: random.Random, w: World) -> Fact:
    t = rng.choice(w.teams)
    time = rng.choice(["9:15", "9:30", "9:45", "10:00", "10:30"])
    text = f"The {t} team's standup is at {time} in the {rng.choice(ROOMS)} room."
    return Fact(text, "fact", ("standup", t), f"When and where is the {t} team standup?")


def _owner(rng: random.Random, w: World) -> Fact:  # a world edge: the generator maps it to its memory
    s = rng.choice(w.services)
    return Fact("", "fact", ("edge", "owner", s), rng.choice([f"Which team owns {s}?", f"What team maintains {s}?"]))


def _membership(rng: random.Random, w: World) -> Fact:
    leads = set(w.lead.values())
    p = rng.choice([p for p in w.people if p not in leads])
    return Fact("", "fact", ("edge", "member", p), rng.choice([f"Which team is {p} on?", f"What team does {p} work on?"]))


PLAIN_FAMILIES: dict[str, Callable[[random.Random, World], Fact]] = {
    "procedure": _procedure, "preference": _preference, "decision": _decision, "ticket": _ticket,
    "leave": _leave, "standup": _standup, "owner": _owner, "membership": _membership,
}


def chitchat(rng: random.Random, w: World) -> Fact:
    p, p2 = rng.sample(w.people, 2)
    room, room2 = rng.sample(ROOMS, 2)
    text = rng.choice(CHITCHAT).format(topic=rng.choice(_TOPICS), day=rng.choice(_DAYS), room=room, room2=room2,
                                       P=p, P2=p2, T=rng.choice(w.teams), month=rng.choice(MONTHS))
    return Fact(text, "event", ("chat", text))
