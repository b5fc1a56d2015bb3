"""Federated averaging as messages, in-process: two real nodes (SQLite, keys, signed numbered messages
through the real inbox), a member's update pooled by the queen, her canonical adopted by both, bad or
foreign messages refused, and a node that takes over continuing from the last canonical it received."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from colony.config import Settings
from colony.federation import _store
from colony.federation.inbox import receive_message
from colony.federation.learn_task import CANONICAL_KIND, UPDATE_KIND, Learner, canonical, learning_status
from colony.federation.learning import UpdateBody
from colony.federation.outbox import send
from colony.federation.roles import adopt_claim, claim
from colony.identity.events import Event
from colony.node import Node


def make_node(tmp_path: Path, name: str) -> Node:
    secret = tmp_path / f"{name}.passphrase"
    secret.write_text(f"a passphrase for {name} in the tests\n")
    secret.chmod(0o600)
    node = Node(Settings(home=tmp_path / name, key_passphrase_file=secret, cognition_enabled=True))
    node.keyring.ensure(announce=False)
    return node


def teach(node: Node, calls: int) -> None:
    substrate = node.cognition
    assert substrate is not None and substrate.predictor is not None
    p = substrate.predictor
    for i in range(calls):
        tool = ("read_file", "http_get")[i % 2]
        p.learn(p.features(tool, arg_bytes=30), i % 3 != 0, tool)


def key(node: Node) -> str:
    return node.keyring.node().public_hex


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """A queen and a member that trust each other and both follow the queen's term 1."""
    queen, member = make_node(tmp_path, "queen"), make_node(tmp_path, "member")
    for a, b in ((queen, member), (member, queen)):
        _store.upsert_member(a.db, key(b), f"http://127.0.0.1:1/{b.settings.home.name}", name=b.settings.home.name,
                             added_by="operator", now=time.time())
    signed = claim(queen, 1)
    assert signed is not None and adopt_claim(member.db, signed)
    deliver(queen, member)  # the claim message itself
    yield queen, member
    for n in (queen, member):
        n.db.close()


def deliver(sender: Node, receiver: Node) -> list[Event]:
    """Everything ``sender`` queued for ``receiver``, through the receiver's real inbox checks and handlers."""
    me, done = key(receiver), []
    for row in _store.pending(sender.db, me):
        event = Event.model_validate_json(row["event"])
        receive_message(receiver, key(sender), event)
        _store.mark_delivered(sender.db, me, int(row["seq"]), time.time())
        done.append(event)
    return done


def incidents(node: Node) -> list[tuple[str | None, str]]:
    return [(r["peer"], r["kind"]) for r in _store.list_incidents(node.db)]


def test_a_round_over_messages_and_a_takeover_that_continues_from_the_last_canonical(
        pair: tuple[Node, Node]) -> None:
    queen, member = pair
    teach(queen, 40)
    teach(member, 10)
    live = frozenset({key(queen), key(member)})
    at_queen, at_member = Learner(queen, interval_s=1.0), Learner(member, interval_s=1.0)

    at_member.step(key(member), live)  # the member sends its update to the queen
    [update] = deliver(member, queen)
    assert update.kind == UPDATE_KIND and learning_status(queen).pool == [key(member)]
    at_member.step(key(member), live)  # nothing new learned: nothing sent again
    assert _store.pending(member.db, key(queen)) == []

    made = at_queen.step(key(queen), live)  # the queen has every expected update: she closes round 1
    assert made is not None and made.round == 1
    assert {c.node: c.samples for c in made.contributors} == {key(queen): 40, key(member): 10}
    [sent] = deliver(queen, member)
    assert sent.kind == CANONICAL_KIND
    for n in (queen, member):
        status = learning_status(n)
        assert (status.round, status.predictor_round, status.samples_since_round) == (1, 1, 0)
        assert status.queen == key(queen) and [c.node for c in status.contributors] == sorted(live)
    assert canonical(member.db) == made
    assert incidents(queen) == incidents(member) == []

    # A canonical signed by a member that is not the queen is dropped; one from the queen that breaks
    # the rules (a contributor's weight not its capped share) is refused and recorded.
    forged = made.model_copy(update={"round": 5})
    send(member, key(queen), CANONICAL_KIND, forged.content())
    deliver(member, queen)
    assert learning_status(queen).round == 1 and incidents(queen) == []
    bad = made.model_copy(update={"round": 2, "samples": made.samples + 1})
    send(queen, key(member), CANONICAL_KIND, bad.content())
    deliver(queen, member)
    assert learning_status(member).round == 1 and incidents(member) == [(key(queen), "bad_signature")]
    # An update that does not start from the queen's round is dropped, and one that is absurd is recorded.
    teach(member, 5)
    stale = UpdateBody(arch=made.arch, round=0, params=made.params, samples=5)
    absurd = UpdateBody(arch=made.arch, round=1, params=(1e6,) * len(made.params), samples=5)
    for body in (stale, absurd):
        send(member, key(queen), UPDATE_KIND, body.content())
    deliver(member, queen)
    assert learning_status(queen).pool == [] and incidents(queen) == [(key(member), "bad_signature")]

    # The member takes over (term 2): it continues from round 1, the last canonical it received.
    signed = claim(member, 2)
    assert signed is not None
    deliver(member, queen)
    assert learning_status(queen).round == 1
    made = at_member.step(key(member), frozenset({key(member)}))
    assert made is not None and made.round == 2 and [c.node for c in made.contributors] == [key(member)]
    deliver(member, queen)
    assert learning_status(queen).round == 2 and learning_status(queen).queen == key(member)
