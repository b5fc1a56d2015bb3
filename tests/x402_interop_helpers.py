"""A real `colony up` node charging on both x402 schemes, for the interop tests.

`LiveNode.start` does what an operator does, with the CLI in subprocesses: creates the node's
identity (``colony identity show --json``), points the node at an EVM rail on a real anvil (the
node's own EVM account given ether for gas), deploys a priced python cartridge with ``colony
cartridge deploy … --price --evm-price``, mints credits for a payer with ``colony ledger mint``
and starts ``colony up`` on a free loopback port. Leaving the context stops the node (SIGTERM,
then SIGKILL after a grace period) and anvil, and reaps both.

Balances are read from the node's database (a shared reader beside the running node) and from
the chain; nothing here mocks any part of the node, the chain or the SDKs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_utils.crypto import keccak
from x402.http.utils import decode_payment_required_header

from colony.identity import SchnorrKey
from colony.ledger import MICRO, Entry, SqliteLedgerStore, read_all, verify_feed
from colony.payments.evm.local import Anvil
from colony.store import open_database

__all__ = ["CREDITS_PRICE", "ECHO", "EVM_PRICE", "LiveNode", "node_tools"]

COLONY = [sys.executable, "-m", "colony"]
#: The cartridge's prices: 0.25 credits, or 0.01 of the 6-decimal token.
CREDITS_PRICE = 250_000
EVM_PRICE = 10_000
PAYER_CREDITS = 2 * MICRO
PAYER_TOKENS = 1_000_000
#: What each CLI step and the node's start may take on a loaded two-core machine.
CLI_TIMEOUT_S = 120.0
START_TIMEOUT_S = 90.0
_SERVING = re.compile(r"colony node on http://127\.0\.0\.1:(\d+)")

ECHO = '''
def handle(request, kv, log):
    seen = {k: v for k, v in request["headers"].items() if k.startswith("x-colony-payment-")}
    return {"status": 200, "body": {"path": request["path"], "payment": seen}}
'''


def node_tools() -> Path:
    """tools/node: where npm installed anvil and the x402 TypeScript SDK (bin/test exports it)."""
    return Path(os.environ.get("COLONY_NODE_TOOLS") or Path(__file__).resolve().parents[1] / "tools" / "node")


@dataclass
class LiveNode:
    """A running `colony up` with a priced cartridge, its chain, and two funded payers."""

    folder: Path
    env: dict[str, str]
    chain: Anvil
    port: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    #: Pays in credits (minted on the node's ledger by the CLI).
    credits_payer: SchnorrKey = field(default_factory=SchnorrKey.generate)
    #: Pay in the token on anvil: one for the Python SDK, one for the TypeScript SDK.
    evm_payer: Any = field(default_factory=lambda: Account.from_key(keccak(text="colony-interop-python-payer")))
    ts_payer: Any = field(default_factory=lambda: Account.from_key(keccak(text="colony-interop-typescript-payer")))
    process: subprocess.Popen[bytes] | None = None

    # -- start and stop ------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def start(cls, folder: Path, sandbox_cache: Path | None = None) -> Iterator[LiveNode]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLONY_")}
        env.update(COLONY_HOME=str(folder / "home"), COLONY_WORKSPACE=str(folder / "ws"),
                   XDG_CONFIG_HOME=str(folder / "config"), COLONY_INSECURE_TEST_KDF="true",
                   COLONY_AUTODETECT_LOCAL_MODELS="false")
        if sandbox_cache is not None:
            env["COLONY_SANDBOX_CACHE_DIR"] = str(sandbox_cache)
        (folder / "ws").mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            chain = stack.enter_context(Anvil())
            live = cls(folder=folder, env=env, chain=chain)
            stack.callback(live.stop)
            live._prepare()
            live._serve()
            yield live

    def _prepare(self) -> None:
        self.identity = json.loads(self.cli("identity", "show", "--json").stdout)
        rail = self.chain.rail
        self.env.update(COLONY_X402_EVM_RPC_URL=rail.rpc_url, COLONY_X402_EVM_CHAIN_ID=str(rail.chain_id),
                        COLONY_X402_EVM_TOKEN=rail.token, COLONY_X402_EVM_TOKEN_NAME=rail.token_name,
                        COLONY_X402_EVM_TOKEN_VERSION=rail.token_version)
        self.chain.send_eth(self.node_evm, 10**18)  # the node's own account pays settlement gas
        for payer in (self.evm_payer, self.ts_payer):
            self.chain.mint(payer.address, PAYER_TOKENS)
        source = self.folder / "echo.py"
        source.write_text(ECHO)
        self.cli("cartridge", "deploy", "echo", str(source), "--price", "0.25", "--evm-price", str(EVM_PRICE))
        self.cli("ledger", "mint", self.credits_payer.public_hex, f"{PAYER_CREDITS}u", "--reason", "x402 interop test")

    def _serve(self) -> None:
        log = (self.folder / "up.log").open("wb")
        with log:  # port 0: the node binds a free port itself and names it (no race for a port)
            self.process = subprocess.Popen([*COLONY, "up", "--port", "0"], env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # up, and the price table read: both schemes offered
            if self.process.poll() is not None:
                raise AssertionError(f"colony up exited with {self.process.returncode}: {self.log_tail()}")
            if not self.port and (found := _SERVING.search(self.log_tail(200))):
                self.port = int(found.group(1))
            try:
                r = httpx.get(self.url("/c/echo/ready"), timeout=5) if self.port else None
                if r is not None and r.status_code == 402 and len(decode_payment_required_header(
                        r.headers["payment-required"]).accepts) == 2:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"colony up did not offer the priced route in time: {self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the node, wait for its graceful exit, SIGKILL it if it hangs; always reaped."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        else:
            process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.folder / "up.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- what tests use -------------------------------------------------------------------------
    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*COLONY, *args], env=self.env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"colony {' '.join(args)} exited {r.returncode}: {r.stdout}\n{r.stderr}"
        return r

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def node_pub(self) -> str:
        """The node's public key: the ledger that issues the credits (the credits asset)."""
        return str(self.identity["node"]["public_hex"])

    @property
    def node_evm(self) -> str:
        return str(self.identity["node"]["evm_address"])

    @property
    def agent(self) -> dict[str, Any]:
        [agent] = [a for a in self.identity["agents"] if a["name"] == "colony"]
        return dict(agent)

    @contextlib.contextmanager
    def ledger(self) -> Iterator[SqliteLedgerStore]:
        """The node's ledger store, read beside the running node."""
        db = open_database(Path(self.env["COLONY_HOME"]) / "colony.db")
        try:
            yield SqliteLedgerStore(db)
        finally:
            db.close()

    def credits(self, account: str) -> int:
        with self.ledger() as store:
            view = store.account(account)
            return 0 if view is None else view.balance

    def entries(self, account: str) -> list[Entry]:
        with self.ledger() as store:
            return store.entries(account)

    def ledger_verifies(self) -> bool:
        with self.ledger() as store:
            return verify_feed(*read_all(store)).ok
