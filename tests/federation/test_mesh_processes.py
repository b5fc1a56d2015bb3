"""A colony is a mesh, not a star: three `colony up` processes on loopback. The queen admits two
children with invites; she introduces them to each other, they verify each other and trust each
other (``colony peers list --json`` says so, and who introduced whom), a message from one child
reaches the other directly, and when the queen is killed (SIGKILL) the two children — who knew each
other only through her — agree on a new queen within a bound."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from colony.config import Settings
from colony.federation import NOTE_KIND, _store, send
from colony.node import Node
from colony.server.auth import load_or_create_token
from colony.server.run import free_port
from colony.store import open_database

COLONY = [sys.executable, "-m", "colony"]
#: Fast heartbeats: a node is dead after 1.5 s of silence, a claim follows 1.5 s of a stable view.
HEARTBEAT_S = 0.5
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0, every: float = 0.2) -> T:
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


class Proc:
    """One node: its own home, passphrase file, port and `colony up` process."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.root, self.port = name, root, free_port("127.0.0.1")
        self.home = root / name
        self.home.mkdir(parents=True)
        secret = root / f"{name}.passphrase"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
        self.env = dict(os.environ, COLONY_HOME=str(self.home), COLONY_KEY_PASSPHRASE_FILE=str(secret),
                        COLONY_FEDERATION_HEARTBEAT_S=str(HEARTBEAT_S), COLONY_LOG_LEVEL="WARNING")
        self.proc: subprocess.Popen[bytes] | None = None
        self.pubkey = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.root / f"{self.name}.log", "ab") as log:
            self.proc = subprocess.Popen([*COLONY, "up", "--port", str(self.port)], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self) -> None:
        def hello() -> str:
            assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited"
            return str(httpx.get(f"{self.url}/federation/v1/hello", timeout=2).json()["pubkey"])

        self.pubkey = wait_for(f"{self.name} to answer", hello, timeout=60)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        auth = {"Authorization": f"Bearer {load_or_create_token(self.home)[0]}"}
        return httpx.request(method, f"{self.url}{path}", headers=auth, timeout=15, **kwargs)

    def peers(self) -> dict[str, Any]:
        r = self.api("GET", "/api/v1/peers")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*COLONY, *args], env={**self.env, "COLUMNS": "300"}, capture_output=True, text=True,
                              timeout=120)

    def settings(self) -> Settings:
        return Settings(home=self.home, key_passphrase_file=Path(self.env["COLONY_KEY_PASSPHRASE_FILE"]))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[Proc]]:
    nodes = [Proc(name, tmp_path) for name in ("n1", "n2", "n3")]
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            n.wait_ready()
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def agreed(group: list[Proc], queen: str) -> int | None:
    """The term when every node of ``group`` sees the others live and follows ``queen``; else None."""
    keys = {n.pubkey for n in group}
    views = [n.peers() for n in group]
    for v in views:
        listed = {p["pubkey"]: p for p in v["peers"]}
        if v["queen"] != queen or not all(k in listed and listed[k]["live"] for k in keys if k != v["me"]["pubkey"]):
            return None
    terms = {v["term"] for v in views}
    return terms.pop() if len(terms) == 1 else None


def test_the_queens_children_meet_through_her_talk_directly_and_elect_a_new_queen_when_she_dies(
        three: list[Proc]) -> None:
    # The lowest key is the queen by the rule (it claims the first term as soon as it has a member),
    # so she is the node the other two join with her invites.
    queen, *children = sorted(three, key=lambda n: n.pubkey)
    for child in children:
        token = queen.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
        r = child.api("POST", "/api/v1/peers", json={"url": queen.url, "invite": token, "pubkey": queen.pubkey})
        assert r.status_code == 200 and r.json()["joined"] is True, r.text
    x, y = children

    # 1. The children trust each other, introduced by the queen (and both still trust her directly).
    def meshed() -> bool:
        for me, other in ((x, y), (y, x)):
            listed = {p["pubkey"]: p for p in me.peers()["peers"]}
            sibling, parent = listed.get(other.pubkey), listed.get(queen.pubkey)
            if sibling is None or parent is None:
                return False
            if (sibling["status"], sibling["added_by"], sibling["introduced_by"], sibling["live"]) != (
                    "trusted", "introduced", queen.pubkey, True):
                return False
            if (parent["status"], parent["added_by"], parent["introduced_by"]) != ("trusted", "operator", None):
                return False
        return True

    wait_for("the two children to trust each other", meshed, timeout=60)
    listed = x.cli("peers", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {p["pubkey"]: p for p in json.loads(listed.stdout)["peers"]}
    assert set(rows) == {queen.pubkey, y.pubkey}
    assert (rows[y.pubkey]["introduced_by"], rows[y.pubkey]["removed_reason"]) == (queen.pubkey, None)
    assert rows[queen.pubkey]["introduced_by"] is None
    for n in three:  # the handshake refused nobody: no incident anywhere
        db = open_database(n.home / "colony.db")
        try:
            assert _store.list_incidents(db) == [], n.name
        finally:
            db.close()
    shown = x.cli("peers", "list")
    assert shown.returncode == 0 and f"introduced by {queen.name}" in shown.stdout, shown.stdout

    # 2. A message from one child reaches the other directly: signed by x, in y's inbox from x.
    node = Node(x.settings())
    try:
        note = send(node, y.pubkey, NOTE_KIND, json.dumps({"hello": "sibling"}))
    finally:
        node.db.close()

    def arrived() -> list[str] | None:
        db = open_database(y.home / "colony.db")
        try:
            ids = [r["event_id"] for r in _store.list_inbox(db, x.pubkey) if r["kind"] == NOTE_KIND]
        finally:
            db.close()
        return ids or None

    assert wait_for("x's note in y's inbox", arrived) == [note.id]
    db = open_database(x.home / "colony.db")
    try:
        assert [r["delivered_at"] is not None for r in _store.outbox_rows(db, y.pubkey) if r["kind"] == NOTE_KIND] \
            == [True]
    finally:
        db.close()

    # 3. The queen dies: the children, who know each other only through her introduction, agree on
    #    the lowest surviving key for the next term within a bound.
    term = wait_for("all three to follow the queen", lambda: agreed(three, queen.pubkey), timeout=60)
    killed_at = time.monotonic()
    queen.kill()
    successor = min(x.pubkey, y.pubkey)
    new_term = wait_for("the children to agree on a new queen", lambda: agreed(children, successor), timeout=30)
    took = time.monotonic() - killed_at
    assert new_term == term + 1
    # 3 heartbeats to see her dead + 3 of a stable view + a tick and a delivery: about 7 heartbeats.
    assert took < 20 * HEARTBEAT_S, took
    for n in children:
        view = n.peers()
        dead = next(p for p in view["peers"] if p["pubkey"] == queen.pubkey)
        assert dead["live"] is False and view["queen"] == successor
