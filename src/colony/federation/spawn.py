"""``colony spawn NAME``: a new node made from this one, started, and joined to its parent.

The child gets everything a node owns for itself: a data directory (default
``<parent home>/nodes/NAME``), a fresh node key and agent (its identities, hence its wallet), a
passphrase file of its own (0600, outside that directory, as every node's —
`colony.identity.passphrase`), and a free loopback port. It runs as a detached ``colony up``
process (``colony.log`` and ``colony.pid`` in its directory; ``node.env`` holds the variables that
start it again, never a secret).

Joining uses the same door as any other node: the parent issues a one-time invite in its own
database (whether or not it is running), and the child's join request — NIP-98 signed by the
child's key, carrying its own signed announcement — spends it at the parent's
``/federation/v1/join``. When the parent is not running, the invite is spent the same way in the
parent's database directly, and the parent finds its child there when it starts. Either way the
child trusts the parent from its first heartbeat, and both record the other as ``spawn``.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from colony.config import Settings
from colony.federation import _store
from colony.federation.announce import Announcer, url_of
from colony.federation.client import PeerClient
from colony.federation.errors import FederationError, PeerUnreachable
from colony.federation.membership import new_invite, spend_invite, trust
from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.identity.passphrase import default_passphrase_file, generate_passphrase
from colony.identity.store import NAME_PATTERN, Keyring, prepare_identities
from colony.store import Database, open_database
from colony.store.home import prepare_home

__all__ = ["Spawned", "spawn"]

#: How long the child may take to answer its hello.
START_TIMEOUT_S = 60.0
#: Variables of this process the child must not inherit: its keys and data are its own.
_NOT_INHERITED = ("COLONY_KEY_PASSPHRASE", "COLONY_KEY_PASSPHRASE_FILE", "COLONY_DATABASE_URL", "COLONY_PUBLIC_URL",
                  "COLONY_HOME")


@dataclass(frozen=True)
class Spawned:
    name: str
    url: str
    pubkey: str
    home: Path
    pid: int
    log: Path
    #: True when the parent answered and accepted the child's join; False when it was not running.
    joined_live: bool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _child_settings(parent: Settings, home: Path, url: str, passphrase_file: Path | None) -> Settings:
    return parent.model_copy(update={"home": home, "public_url": url, "key_passphrase": None,
                                     "key_passphrase_file": passphrase_file, "database_url": None})


def _start(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(home / "colony.log", "ab")  # noqa: SIM115 - handed to the child, which keeps writing it
    try:
        return subprocess.Popen([sys.executable, "-m", "colony", "up", "--port", str(port)], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        log.close()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-1500:] if log.exists() else ""


async def _wait_hello(client: PeerClient, url: str, pubkey: str, proc: subprocess.Popen[bytes], log: Path) -> Event:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            tail = await asyncio.to_thread(_tail, log)
            raise FederationError(f"The new node exited with status {proc.returncode} before answering; its log "
                                  f"({log}) ends with:\n{tail}", reason="failed")
        try:
            return await client.hello(url, expect=pubkey)
        except PeerUnreachable:
            if time.monotonic() > deadline:
                raise FederationError(f"The new node did not answer at {url} within {START_TIMEOUT_S:.0f} s; "
                                      f"see {log}.", reason="failed") from None
            await asyncio.sleep(0.2)


def spawn(parent: Settings, name: str, *, port: int | None = None, directory: Path | None = None) -> Spawned:
    """Create, start and join a child node (see the module docstring); `FederationError` when it cannot."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise FederationError(f"{name!r} is not a valid node name: use 1-32 lowercase letters, digits, '-' or '_'.",
                              reason="invalid")
    home = (directory or parent.home / "nodes" / name).expanduser().resolve()
    if (home / "colony.db").exists():
        raise FederationError(f"{home} already holds a node; choose another name or --dir.", reason="conflict")
    port = port or _free_port()
    if not _port_free(port):
        raise FederationError(f"Port {port} on 127.0.0.1 is in use; pass another --port.", reason="conflict")
    url = f"http://127.0.0.1:{port}"

    prepare_home(home)
    passphrase = generate_passphrase(_child_settings(parent, home, url, None))
    settings = _child_settings(parent, home, url, default_passphrase_file(home))
    prepare_identities(settings)
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    own = {"COLONY_HOME": str(home), "COLONY_KEY_PASSPHRASE_FILE": passphrase.source, "COLONY_PUBLIC_URL": url}
    env.update(own)
    (home / "node.env").write_text("".join(f"{k}={v}\n" for k, v in own.items()))

    parent_db = open_database(parent.db_path)
    child_db = open_database(settings.db_path)
    try:
        parent_keys, child_keys = Keyring(parent_db, parent), Keyring(child_db, settings)
        parent_key, child_node = parent_keys.node().public_hex, child_keys.node()
        invite = new_invite(parent_db, 600)
        proc = _start(home, port, env)
        (home / "colony.pid").write_text(f"{proc.pid}\n")
        joined = asyncio.run(_join(parent, parent_db, parent_key, child_db, child_node.schnorr_key, url, invite.token,
                                   proc, home / "colony.log"))
        for db, key in ((parent_db, child_node.public_hex), (child_db, parent_key)):
            _store.set_added_by(db, key, "spawn")
    finally:
        parent_db.close()
        child_db.close()
    return Spawned(name, url, child_node.public_hex, home, proc.pid, home / "colony.log", joined)


async def _join(parent: Settings, parent_db: Database, parent_key: str, child_db: Database, child_key: SchnorrKey,
                url: str, invite: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    """Wait for the child, then spend the invite: at the running parent, else in its database."""
    async with PeerClient(child_key, timeout_s=10.0) as client:
        child_hello = await _wait_hello(client, url, child_key.public_hex, proc, log)
        parent_url = url_of(parent, parent_db)
        try:
            parent_hello: Event | None = await client.hello(parent_url, expect=parent_key)
        except FederationError:  # not running (or not at its recorded URL): join through its database
            parent_hello = None
        if parent_hello is not None:
            await client.join(parent_url, child_hello, invite, expect=parent_key)
            trust(child_db, parent_hello, parent_url, "spawn")
            return True
    if not spend_invite(parent_db, invite, child_key.public_hex):
        raise FederationError("The invite made for the new node could not be spent.", reason="failed")
    trust(parent_db, child_hello, url, "spawn")
    from colony.node import Node  # the parent's announcement needs its agents' cards

    parent_node = Node(parent)
    try:
        trust(child_db, Announcer(parent_node, parent_url).build(), parent_url, "spawn")
    finally:
        parent_node.db.close()
    return False
