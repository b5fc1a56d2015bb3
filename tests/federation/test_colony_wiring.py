"""Three `colony up` processes on loopback, wired together: each replicates the others' ledgers (and
follows one that restarts on another port), only members may pull a ledger, an equivocation proof
found on one node reaches the others (a bogus one is refused and recorded), a round of federated
averaging runs over signed messages with cognition on, and Psi shows in every node's status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fed_helpers import NodeProc, wait_for
from test_replication_proofs import two_histories

from colony.bench.runs import save_run
from colony.bench.scoring import Score
from colony.config import Settings
from colony.federation import PROOF_KIND, _store, send
from colony.federation.learning import capped_weights
from colony.federation.replica_sources import HttpSource, StoreSource
from colony.federation.replica_wire import SourceError
from colony.federation.replication import equivocations, import_proof, proof_id, sync, verify_replica
from colony.identity import SchnorrKey
from colony.ledger import MICRO, EquivocationProof, Ledger, open_ledger_store
from colony.node import Node
from colony.server.run import free_port
from colony.store import open_database
from colony.store.audit import ToolCallRecord

SKILLS = {"n1": ["python", "search"], "n2": ["python", "sql"], "n3": ["writing"]}
SCORES = {"n1": 0.6, "n2": 0.4, "n3": 0.5}
#: Audit rows each node's predictor warm-starts from: the samples of its first update.
CALLS = 30
#: Heartbeats between syncs and between learning steps (0.5 s heartbeats: a sync every second, a step every 2 s).
SYNC_EVERY, LEARN_EVERY = 2, 4


def settings_of(n: NodeProc) -> Settings:
    return Settings(home=n.home, key_passphrase_file=Path(n.env["COLONY_KEY_PASSPHRASE_FILE"]))


def seed(n: NodeProc, index: int) -> None:
    """Before the first start: keys, the agent's skills, a benchmark score, audit rows, and credits."""
    n.home.mkdir(parents=True, exist_ok=True)
    node = Node(settings_of(n))
    try:
        keyring = node.keyring
        keyring.ensure(announce=False)
        agent = keyring.update_agent("colony", skills=SKILLS[n.name])
        save_run(node.db, suite="own", model="scripted", shard="1/1", wall_s=1.0, verdicts=[], tokens={},
                 result=Score(problems=10, passed=int(10 * SCORES[n.name]), score=SCORES[n.name], ci_low=0.0,
                              ci_high=1.0, tiers=[]))
        for i in range(CALLS):
            tool = ("read_file", "http_get", "run_command")[(i + index) % 3]
            node.records.record_tool_call(ToolCallRecord(
                session_id="s", turn_id=None, call_id=f"{n.name}-{i}", tool=tool, arguments={"i": i},
                outcome="ok" if (i * 7 + index) % 4 else "error", latency_ms=1.0, approval="allow"))
        Ledger(open_ledger_store(node.db, node.settings), keyring.node().schnorr_key).mint(
            agent.public_hex, 10 * MICRO, "test funding", actor="test")
    finally:
        node.db.close()


@pytest.fixture
def colony(tmp_path: Path) -> Iterator[list[NodeProc]]:
    nodes = [NodeProc(name, tmp_path) for name in ("n1", "n2", "n3")]
    try:
        for i, n in enumerate(nodes):
            n.env.update(COLONY_COGNITION_ENABLED="true", COLONY_FEDERATION_SYNC_EVERY=str(SYNC_EVERY),
                         COLONY_FEDERATION_LEARN_EVERY=str(LEARN_EVERY))
            seed(n, i)
            n.start()
        for n in nodes:
            n.wait_ready()
        a, b, c = nodes
        for joiner, host in ((b, a), (c, a), (b, c)):  # everyone joins everyone, with invites
            token = host.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
            r = joiner.api("POST", "/api/v1/peers", json={"url": host.url, "invite": token, "pubkey": host.pubkey})
            assert r.status_code == 200 and r.json()["joined"] is True, r.text
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def status(n: NodeProc) -> dict[str, Any]:
    r = n.api("GET", "/api/v1/peers/status")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def ledger_root(n: NodeProc) -> str:
    return str(n.api("GET", "/api/v1/ledger/root").json()["root"])


def replica_of(n: NodeProc, origin: NodeProc) -> dict[str, Any]:
    return next(r for r in status(n)["colony"]["replicas"] if r["origin"] == origin.pubkey)


def incidents(n: NodeProc) -> list[tuple[str | None, str, str]]:
    db = open_database(n.home / "colony.db")
    try:
        return [(r["peer"], r["kind"], r["detail"]) for r in _store.list_incidents(db)]
    finally:
        db.close()


def test_a_colony_replicates_gossips_proofs_averages_and_measures_psi(colony: list[NodeProc], tmp_path: Path) -> None:
    a, b, c = colony
    queen = min(n.pubkey for n in colony)

    def settled() -> bool:
        views = [status(n) for n in colony]
        return all(v["queen"] == queen and len(v["live"]) == 2 for v in views)

    wait_for("a queen and everyone live", settled)
    check_replication(a, [b, c])
    check_members_only(a)
    check_proofs(tmp_path, a, b, c)
    check_averaging(colony, queen)
    check_psi(colony)
    worker = max((n for n in colony if n.pubkey != queen), key=lambda n: n.pubkey)
    check_restarted_member_is_followed(worker, [n for n in colony if n is not worker])


def transfer(n: NodeProc, amount: str) -> None:
    r = n.api("POST", "/api/v1/wallet/transfers",
              json={"from": "colony", "to": SchnorrKey.generate().public_hex, "amount": amount})
    assert r.status_code == 201, r.text


def check_replication(origin: NodeProc, replicas: list[NodeProc]) -> None:
    """A transfer on ``origin`` reaches the others' replicas: the same root, and the replica verifies."""
    transfer(origin, "1.5")
    root = ledger_root(origin)
    for n in replicas:
        def caught_up(n: NodeProc = n) -> dict[str, Any] | None:
            r = replica_of(n, origin)
            return r if r["remote_root"] == root and r["local_root"] == root else None

        r = wait_for(f"{n.name} to replicate {origin.name}'s ledger", caught_up)
        assert r["in_sync"] and r["entries"] >= 3 and r["problems"] == 0, r  # the mint, then the two legs
        db = open_database(n.home / "colony.db")
        try:
            report = verify_replica(db, origin.pubkey)
            assert report.ok, report.problems
        finally:
            db.close()


def check_members_only(n: NodeProc) -> None:
    """A valid NIP-98 signer that is not a member is refused 403 on the ledger routes, and recorded."""
    stranger = SchnorrKey.generate()
    with HttpSource(n.url, stranger) as source, pytest.raises(SourceError) as refused:
        source.root()
    assert refused.value.status == 403 and refused.value.reason == "unknown_peer"
    assert any(peer == stranger.public_hex and kind == "unknown_peer" for peer, kind, _ in incidents(n))


def check_proofs(tmp_path: Path, a: NodeProc, b: NodeProc, c: NodeProc) -> None:
    """A proof that reaches a (as a sync would find it) is passed on; b and c verify and keep it.
    A bogus one from a member is refused by its receiver and recorded against the sender."""
    proof = find_proof(tmp_path)
    db = open_database(a.home / "colony.db")
    try:
        assert import_proof(db, proof)
    finally:
        db.close()
    pid = proof_id(proof)
    for n in (b, c):
        def holds(n: NodeProc = n) -> bool:
            db = open_database(n.home / "colony.db")
            try:
                return any(p.id == pid and p.found_by == "import" for p in equivocations(db))
            finally:
                db.close()

        wait_for(f"{n.name} to hold the proof", holds)
    assert all(status(n)["colony"]["equivocations"] == 1 for n in (a, b, c))

    node = Node(settings_of(a))
    try:
        bogus = EquivocationProof(first=proof.first, second=proof.first)  # one event twice convicts nobody
        send(node, b.pubkey, PROOF_KIND, bogus.model_dump_json())
    finally:
        node.db.close()
    wait_for("b to refuse the bogus proof", lambda: any(
        peer == a.pubkey and kind == "bad_signature" and "equivocation proof refused" in detail
        for peer, kind, detail in incidents(b)))
    assert status(b)["colony"]["equivocations"] == 1


def find_proof(tmp_path: Path) -> EquivocationProof:
    """Two signed histories of one key (as the replication tests build them), compared: the proof."""
    (tmp_path / "proof").mkdir()
    one, two, _ = two_histories(tmp_path / "proof", SchnorrKey.generate(), accounts=4)
    replica = open_database(tmp_path / "finder.db")
    try:
        origin = one.node_key.public_hex
        sync(replica, origin, StoreSource(one.store))
        [proof] = sync(replica, origin, StoreSource(two.store)).proofs
        return proof
    finally:
        replica.close()
        one.close()
        two.close()


def check_averaging(colony: list[NodeProc], queen: str) -> None:
    """Each node warm-started on CALLS audit rows; the queen averages all three and every node adopts round 1."""
    def one_round() -> list[dict[str, Any]] | None:
        views = [status(n)["colony"]["learning"] for n in colony]
        return views if all(v["round"] == 1 and v["predictor_round"] == 1 for v in views) else None

    views = wait_for("every node on canonical round 1", one_round, timeout=30)
    keys = sorted(n.pubkey for n in colony)
    for v in views:
        assert v["enabled"] and v["queen"] == queen and v["samples_since_round"] == 0, v
        assert [c["node"] for c in v["contributors"]] == keys
        assert [c["samples"] for c in v["contributors"]] == [CALLS] * 3
        assert [c["weight"] for c in v["contributors"]] == capped_weights([CALLS] * 3)


def check_psi(colony: list[NodeProc]) -> None:
    """Psi over three nodes with scores, distinct skills and one canonical: in (0, 1], and the sphere has it."""
    for n in colony:
        def measured(n: NodeProc = n) -> dict[str, Any] | None:
            psi = status(n)["colony"]["psi"]
            return psi if psi["now"]["nodes"] == 3 and psi["now"]["sync"] > 0.5 and psi["series"] else None

        psi = wait_for(f"{n.name} to measure Psi", measured)
        now = psi["now"]
        assert 0.0 < now["psi"] <= 1.0, now
        assert now["intelligence"] == pytest.approx(sum(SCORES.values()) / 3)
        assert 0.0 < now["diversity"] <= 1.0 and now["velocity"] == 0.5
        assert all(0.0 <= s["psi"] <= 1.0 for s in psi["series"])
        cognition = n.api("GET", "/api/v1/cognition")  # fed to the cognitive sphere every heartbeat
        assert cognition.status_code == 200 and cognition.json()["psi"] > 0.0, cognition.text


def check_restarted_member_is_followed(member: NodeProc, others: list[NodeProc]) -> None:
    """A member restarted on another port moves its root; the replicas follow it there (heads only advance)."""
    before, term = ledger_root(member), status(member)["term"]
    for n in others:
        wait_for(f"{n.name} to hold {member.name}'s root", lambda n=n: replica_of(n, member)["local_root"] == before)
    member.stop()
    member.start(port=free_port("127.0.0.1"))
    member.wait_ready()
    transfer(member, "0.25")
    after = ledger_root(member)
    assert after != before
    for n in others:
        def followed(n: NodeProc = n) -> bool:
            r = replica_of(n, member)
            return bool(r["local_root"] == after and r["remote_root"] == after)

        wait_for(f"{n.name} to follow {member.name} after its restart", followed, timeout=30)
    # The others reach it at its new address too: it sees them live, and nobody claimed a new term.
    back = wait_for(f"{member.name} to see the others live again", lambda: (
        v := status(member))["colony"]["psi"]["now"]["nodes"] == 3 and v)
    assert back["term"] == term and len(back["live"]) == 2
    assert all(status(n)["term"] == term for n in others)
