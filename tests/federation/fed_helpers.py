"""Real node processes for federation tests: each a `colony up` with its own home, port and passphrase file.

Below them, the market colony the cross-node auction tests share (test_remote_market_processes,
test_faults_processes, test_faults_resume): a poster node a and members b (agent ada) and c (agent
bob), staked and funded, with the helpers that post, follow and check their auctions.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from colony.config import Settings
from colony.federation import _store, remote_store
from colony.ledger import MICRO, open_ledger_store
from colony.market import stakes
from colony.market.cost import CostModel
from colony.market.profiles import AgentSpec, create_agent
from colony.market.service import Market
from colony.node import Node
from colony.server.auth import load_or_create_token
from colony.server.run import free_port
from colony.store import open_database
from colony.testing import Reply

COLONY = [sys.executable, "-m", "colony"]
#: Fast heartbeats: a node is dead after 1.5 s of silence, a claim follows 1.5 s of a stable view.
HEARTBEAT_S = 0.5
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 20.0, every: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError, ValueError):
            last = None
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


# -- nodes in this process ------------------------------------------------------------------------
def key(n: Node) -> str:
    """A node's public key (hex)."""
    return n.keyring.node().public_hex


def trust(holder: Node, *members: Node) -> None:
    """``holder`` trusts each of ``members`` at an address where nothing answers: the test hands their
    messages over itself."""
    for m in members:
        name = m.settings.home.name
        _store.upsert_member(holder.db, key(m), f"http://127.0.0.1:9/{name}", name=name, added_by="operator",
                             now=time.time())


@dataclass
class NodeProc:
    """One node: its directory, environment and (while running) its process."""

    name: str
    root: Path
    port: int = field(default_factory=lambda: free_port("127.0.0.1"))
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.home = self.root / self.name
        secret = self.root / f"{self.name}.passphrase"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
        # The nodes log warnings only; TEST_NODE_LOG_LEVEL=INFO shows their claims and failed links (not a
        # COLONY_ variable: the suite clears those for every test).
        level = os.environ.get("TEST_NODE_LOG_LEVEL", "WARNING")
        self.env = dict(os.environ, COLONY_HOME=str(self.home), COLONY_KEY_PASSPHRASE_FILE=str(secret),
                        COLONY_FEDERATION_HEARTBEAT_S=str(HEARTBEAT_S), COLONY_LOG_LEVEL=level)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, port: int | None = None) -> NodeProc:
        self.port = port or self.port
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{self.name}.log", "ab")  # noqa: SIM115 - the child writes it
        self.proc = subprocess.Popen([*COLONY, "up", "--port", str(self.port)], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def wait_ready(self, timeout: float = 45.0) -> str:
        """Wait for the hello; returns the node's public key."""
        def hello() -> str | None:
            assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited: {self.log()[-2000:]}"
            return str(httpx.get(f"{self.url}/federation/v1/hello", timeout=2).json()["pubkey"])

        self.pubkey = wait_for(f"{self.name} to answer", hello, timeout)
        return self.pubkey

    def log(self) -> str:
        path = self.root / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {load_or_create_token(self.home)[0]}"}

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers=self.auth, timeout=15, **kwargs)

    def peers(self) -> dict[str, Any]:
        r = self.api("GET", "/api/v1/peers")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``colony ARGS`` against this node's home, with a wide terminal for tables."""
        return subprocess.run([*COLONY, *args], env={**self.env, "COLUMNS": "300"}, capture_output=True, text=True,
                              timeout=120)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def agreed(group: list[NodeProc], queen: str) -> int | None:
    """The term when every node of ``group`` lists the others as live and follows ``queen``; else None."""
    keys = {n.pubkey for n in group}
    views = [n.peers() for n in group]
    for v in views:
        listed = {p["pubkey"]: p for p in v["peers"]}
        if v["queen"] != queen or not all(k in listed and listed[k]["live"] for k in keys if k != v["me"]["pubkey"]):
            return None
    terms = {v["term"] for v in views}
    return terms.pop() if len(terms) == 1 else None


# -- a market colony: a poster node a, members b (ada) and c (bob), the scripted model ----------------
#: Bids above the stake-free 5 credits: a failed verification slashes part of the stake behind the price.
COSTS = {"ada": 3 * MICRO, "bob": 9 * MICRO // 2}
WALLET, STAKE, POSTER_FUNDS = 3 * MICRO, 5 * MICRO, 100 * MICRO
ANSWER = "```python\ndef digit_sum(n):\n    return sum(int(c) for c in str(abs(n)))\n```"


class Script:
    """The model: bob always answers; ada's next calls take the replies queued for her (then answer)."""

    def __init__(self) -> None:
        self.ada: list[Reply] = []
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            if "You are ada" in json.dumps(body) and self.ada:
                return self.ada.pop(0)
        return Reply.text(ANSWER)


def is_ada(body: dict[str, Any]) -> bool:
    """Whether a model request was made for ada (her persona is in the system prompt)."""
    return "You are ada" in json.dumps(body)


def settings_of(n: NodeProc) -> Settings:
    """``n``'s settings as its process has them where it matters here: home, keys, and its PostgreSQL."""
    url = n.env.get("COLONY_DATABASE_URL")
    return Settings(home=n.home, key_passphrase_file=Path(n.env["COLONY_KEY_PASSPHRASE_FILE"]),
                    **({"database_url": url} if url else {}))


def prepare(n: NodeProc, agents: dict[str, int]) -> dict[str, str]:
    """Create ``n``'s agents (funded and staked) or fund its poster; returns name → account."""
    n.home.mkdir(parents=True, exist_ok=True)
    node = Node(settings_of(n))
    try:
        market = Market(node)
        keys = {}
        for name, cost in agents.items():
            create_agent(node.keyring, AgentSpec(name=name, persona=f"You are {name}, a Python programmer.",
                                                 skills=["python"], cost=CostModel(overhead=cost)))
            keys[name] = node.keyring.agent(name).public_hex
            market.ledger.mint(keys[name], WALLET + STAKE, "test: wallet")
            stakes.deposit(node, name, STAKE)
        if not agents:
            keys["colony"] = node.keyring.agent("colony").public_hex
            market.ledger.mint(keys["colony"], POSTER_FUNDS, "test: the poster's budget")
        keys["node"] = node.keyring.node().public_hex
        return keys
    finally:
        node.db.close()


@contextmanager
def market_colony(root: Path, model_url: str, *, only: dict[str, dict[str, str]] | None = None,
                  **env: str) -> Iterator[tuple[list[NodeProc], dict[str, str]]]:
    """Three running nodes with the market on: a (the poster, funded), b (ada) and c (bob), staked.

    ``env`` adds settings to every node, ``only`` to the node it names (``{"a": {...}}``: e.g. a's
    ``COLONY_DATABASE_URL``). Yields the nodes and the accounts: ada, bob, and ``a:colony`` (the
    poster), ``<node>:node`` (each node's key).
    """
    nodes = [NodeProc(name, root) for name in ("a", "b", "c")]
    keys: dict[str, str] = {}
    for n, agents in zip(nodes, ({}, {"ada": COSTS["ada"]}, {"bob": COSTS["bob"]}), strict=True):
        n.env.update(COLONY_MARKET_ENABLED="true", COLONY_MARKET_INTERVAL_S="0.3", COLONY_MODEL_NAME="scripted",
                     COLONY_MODEL_BASE_URL=model_url, COLONY_RETRY_BASE_DELAY_S="0.01", **env,
                     **(only or {}).get(n.name, {}))
        keys.update({(f"{n.name}:{k}" if k in ("node", "colony") else k): v for k, v in prepare(n, agents).items()})
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            n.wait_ready()
        yield nodes, keys
    finally:
        for n in nodes:
            n.stop()


def join(a: NodeProc, *members: NodeProc) -> None:
    """The members join a's colony by invitation; returns once a knows b's ada and c's bob."""
    for joiner in members:
        token = a.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
        r = joiner.api("POST", "/api/v1/peers", json={"url": a.url, "invite": token, "pubkey": a.pubkey})
        assert r.status_code == 200 and r.json()["joined"] is True, r.text
    b, c = members

    def agents_known() -> bool:
        agents = {p["pubkey"]: set(p["agents"]) for p in a.peers()["peers"]}
        return "ada" in agents.get(b.pubkey, set()) and "bob" in agents.get(c.pubkey, set())

    wait_for("a to know b's and c's agents", agents_known)


def post(a: NodeProc, goal: str, *, commit_s: int = 3, reveal_s: int = 2) -> str:
    """Post a task for auction on a (verified by a person's approval); returns the auction's id."""
    r = a.api("POST", "/api/v1/market/auctions", json={
        "goal": goal, "skills": ["python"], "reserve": 20 * MICRO, "verification": "approval", "commit_s": commit_s,
        "reveal_s": reveal_s})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def auction(a: NodeProc, auction_id: str) -> dict[str, Any]:
    r = a.api("GET", f"/api/v1/market/auctions/{auction_id}")
    assert r.status_code == 200, r.text
    detail: dict[str, Any] = r.json()
    return detail


def awarded_to(a: NodeProc, auction_id: str, winner: str) -> dict[str, Any] | None:
    detail = auction(a, auction_id)
    return detail if detail["state"] == "awarded" and detail["winner"] == winner else None


def approve_and_wait_paid(a: NodeProc, auction_id: str) -> int:
    """Wait for the winner's result on a, approve it, wait for the payment; returns the price."""
    wait_for("the result on a", lambda: auction(a, auction_id)["task_state"] == "completed", timeout=40)
    r = a.api("POST", f"/api/v1/market/auctions/{auction_id}/verdict", json={"passed": True})
    assert r.status_code == 200, r.text
    wait_for("the payment", lambda: auction(a, auction_id)["state"] == "paid", timeout=30)
    return int(auction(a, auction_id)["price"])


def remote_on(n: NodeProc, auction_id: str) -> tuple[str, str | None] | None:
    """``n``'s remote auction's state and its task's state (None before it has one)."""
    db = open_database(n.home / "colony.db")
    try:
        row = remote_store.get_remote(db, auction_id)
        if row is None:
            return None
        task = db.one("SELECT state FROM tasks WHERE id = ?", (row["task_id"],)) if row["task_id"] else None
        return str(row["state"]), (str(task["state"]) if task else None)
    finally:
        db.close()


def executing_on(n: NodeProc, auction_id: str) -> bool:
    return remote_on(n, auction_id) == ("won", "executing")


def award_ended(a: NodeProc, auction_id: str) -> dict[str, Any] | None:
    """a's record of its award to a member's agent, once given up or cancelled (None while live)."""
    db = open_database(a.home / "colony.db")
    try:
        row = remote_store.award_row(db, auction_id)
        return row if row is not None and row["ended"] else None
    finally:
        db.close()


def sealed_bids(n: NodeProc) -> dict[tuple[str, str], int]:
    """What ``n`` committed to, by (auction, bidder)."""
    db = Node(settings_of(n)).db
    try:
        return {(r["auction"], r["bidder"]): r["amount"] for r in remote_store.bid_rows(db)}
    finally:
        db.close()


def ledger_of(n: NodeProc) -> Any:
    """``n``'s node (close its ``db``) and ledger store, read while the node runs."""
    node = Node(settings_of(n))
    return node, open_ledger_store(node.db, node.settings)


def check_nodes_sound(nodes: Iterable[NodeProc], *, inbox_handled: bool = True) -> None:
    """No node recorded an incident or logged a traceback, and every ledger verifies (``colony ledger verify``)."""
    for n in nodes:
        db = Node(settings_of(n)).db
        try:
            assert _store.list_incidents(db) == [], n.name  # nothing was refused along the way
            if inbox_handled:
                assert all(r["handled_at"] is not None for r in _store.list_inbox(db)), n.name
        finally:
            db.close()
        assert "Traceback" not in n.log(), n.log()[-3000:]
        done = subprocess.run([*COLONY, "ledger", "verify"], env=n.env, capture_output=True, text=True, timeout=60,
                              cwd=os.getcwd())
        assert done.returncode == 0, done.stdout + done.stderr
