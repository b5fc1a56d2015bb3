"""`colony up` as a person runs it: a subprocess, a token, a signal to stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from colony.server.run import free_port
from colony.store import open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.testing import Reply, ScriptedModelServer

COLONY = [sys.executable, "-m", "colony"]


def wait_up(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "colony up exited early"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


def test_up_serves_prints_the_token_once_and_stops_gracefully_on_sigterm(workspace: Path) -> None:
    with ScriptedModelServer([Reply.hang()]) as model:
        port = free_port("127.0.0.1")
        env = dict(os.environ, COLONY_MODEL_BASE_URL=model.base_url, COLONY_MODEL_NAME="scripted")
        proc = subprocess.Popen([*COLONY, "up", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_up(f"{base}/api/v1/health", proc)
            token = subprocess.run([*COLONY, "token"], env=env, capture_output=True, text=True, check=True).stdout.strip()
            assert len(token) >= 32
            auth = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 10
            while not httpx.get(f"{base}/api/v1/health").json()["model"]["available"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            info = httpx.post(f"{base}/api/v1/chat", json={"prompt": "this will hang"}, headers=auth).json()
            while not model.requests:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # uvicorn finishes its graceful shutdown, then re-raises the signal so the exit status says
    # the process was terminated (143 in a shell), as a service manager expects.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert token in err and "shown once" in err and f"127.0.0.1:{port}" in err
    db = open_database(Path(os.environ["COLONY_HOME"]) / "colony.db")
    try:
        turn = SqliteRecordStore(db).get_turn(info["turn_id"])
        assert turn is not None and turn["status"] == "cancelled"
        assert db.scalar("PRAGMA quick_check") == "ok"
    finally:
        db.close()
    # A second start does not print the token again.
    again = subprocess.Popen([*COLONY, "up", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_up(f"http://127.0.0.1:{port}/api/v1/health", again)
        again.send_signal(signal.SIGINT)
        _, err2 = again.communicate(timeout=30)
    finally:
        if again.poll() is None:
            again.kill()
            again.communicate()
    assert again.returncode in (0, -signal.SIGINT, 130)
    assert token not in err2 and "colony token" in err2


def test_up_refuses_a_public_address_without_the_flag() -> None:
    r = subprocess.run([*COLONY, "up", "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "--allow-remote" in r.stderr


def test_up_says_when_the_port_is_taken() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([*COLONY, "up", "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "already in use" in r.stderr and "--port" in r.stderr


def test_configured_host_names_are_answered_and_others_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from colony.config import Settings
    from colony.errors import ConfigError
    from colony.server.run import build_server
    from colony.testing import NodeServer

    monkeypatch.setenv("COLONY_SERVER_ALLOWED_HOSTS", '["colony.test", "alias.test:1234"]')
    with NodeServer(Settings()) as node:
        url = f"{node.base_url}/api/v1/ready"
        assert httpx.get(url, headers={"Host": f"colony.test:{node.port}"}).status_code == 200
        assert httpx.get(url, headers={"Host": "alias.test:1234"}).status_code == 200
        assert httpx.get(url, headers={"Host": "colony.test:1"}).status_code == 421
        assert httpx.get(url, headers={"Host": f"other.test:{node.port}"}).status_code == 421
    monkeypatch.setenv("COLONY_SERVER_ALLOWED_HOSTS", '["not a host/name"]')
    with pytest.raises(ConfigError, match="COLONY_SERVER_ALLOWED_HOSTS"):
        build_server(Settings(), "127.0.0.1", free_port("127.0.0.1"))


def test_a_port_left_in_time_wait_by_a_killed_node_counts_as_free_but_a_listening_one_does_not() -> None:
    """A node killed with open connections leaves its port in TIME_WAIT for a minute; the server
    binds with SO_REUSEADDR and would start, so `colony up` must not refuse the port meanwhile."""
    from colony.server.run import port_is_free

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert not port_is_free("127.0.0.1", port)  # someone serves there: refused
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: its end of the connection goes to TIME_WAIT
    time.sleep(0.05)
    client.close()
    listener.close()
    assert port_is_free("127.0.0.1", port)
