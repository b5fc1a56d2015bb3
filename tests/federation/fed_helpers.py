"""Real node processes for federation tests: each a `colony up` with its own home, port and passphrase file."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from colony.server.auth import load_or_create_token
from colony.server.run import free_port

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
        self.env = dict(os.environ, COLONY_HOME=str(self.home), COLONY_KEY_PASSPHRASE_FILE=str(secret),
                        COLONY_FEDERATION_HEARTBEAT_S=str(HEARTBEAT_S), COLONY_LOG_LEVEL="WARNING")

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
