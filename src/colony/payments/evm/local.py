"""Local EVM chains with Colony's EIP-3009 token deployed: for tests, demos and offline nodes.

Two chains, one shape (`LocalChain`): a token deployed by the chain's first prefunded
account (its owner, who mints), a facilitator account with ether for gas (the second
prefunded account, or a key the caller gives, which is then funded), payers minted their
tokens, and an `EvmRail` describing it all.

- `InProcessChain`: eth-tester with py-evm inside this process. No process, no port; reach
  it through ``chain.provider``. Its prefunded keys are eth-tester's public ones (1, 2, …).
- `Anvil`: a real JSON-RPC node (anvil, from the npm package ``@foundry-rs/anvil``) on
  127.0.0.1, in its own process group, stopped and reaped on exit. Its accounts come from
  anvil's well-known test mnemonic. ``find_anvil`` says how to install it when it is missing.

Every key here is public knowledge: never use these chains' accounts anywhere real.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from colony.errors import ColonyError
from colony.payments.evm.chain import IN_PROCESS_RPC_URL, EvmRail
from colony.payments.evm.token import deploy_token, token_contract

if TYPE_CHECKING:
    from web3 import Web3
    from web3.providers.base import BaseProvider

__all__ = [
    "ANVIL_CHAIN_ID",
    "ANVIL_MNEMONIC",
    "FACILITATOR_GAS_WEI",
    "Anvil",
    "InProcessChain",
    "LocalChain",
    "LocalChainError",
    "find_anvil",
]

#: anvil's default test mnemonic, passed explicitly so the accounts never change under us.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337

_REPO_ROOT = Path(__file__).resolve().parents[4]
_ANVIL_PACKAGES = {
    ("linux", "x86_64"): "anvil-linux-amd64",
    ("linux", "aarch64"): "anvil-linux-arm64",
    ("darwin", "x86_64"): "anvil-darwin-amd64",
    ("darwin", "arm64"): "anvil-darwin-arm64",
}
#: What a facilitator key of the caller's is given for gas: thousands of settlements.
FACILITATOR_GAS_WEI = 10 * 10**18
_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")


class LocalChainError(ColonyError):
    """A local chain could not be found, started or set up; the message says what to do."""


class LocalChain:
    """A chain with the token deployed, its owner, a gas-funded facilitator and its rail."""

    rail: EvmRail
    web3: Web3
    #: The token's owner (the chain's first prefunded account): the only one who can mint.
    deployer: str
    #: A prefunded account's key for `facilitator_scheme`: it pays the settlement gas.
    facilitator_key: str
    facilitator: str

    def _setup(
        self,
        *,
        rpc_url: str,
        keys: list[str],
        payers: Mapping[str, int],
        token_name: str,
        token_version: str,
        token_symbol: str,
        facilitator_key: str | bytes | None,
    ) -> None:
        from eth_account import Account

        if len(keys) < 2:
            raise LocalChainError("a local chain needs two prefunded accounts (token owner, facilitator)")
        self.deployer = str(Account.from_key(keys[0]).address)
        if facilitator_key is None:
            self.facilitator_key = keys[1]
        else:
            self.facilitator_key = "0x" + facilitator_key.hex() if isinstance(facilitator_key, bytes) else facilitator_key
        self.facilitator = str(Account.from_key(self.facilitator_key).address)
        token = deploy_token(self.web3, self.deployer, name=token_name, version=token_version, symbol=token_symbol)
        self.rail = EvmRail(
            rpc_url=rpc_url,
            chain_id=self.web3.eth.chain_id,
            token=token,
            token_name=token_name,
            token_version=token_version,
        )
        if facilitator_key is not None:
            self.send_eth(self.facilitator, FACILITATOR_GAS_WEI)
        for address, amount in payers.items():
            self.mint(address, amount)

    @property
    def provider(self) -> BaseProvider | None:
        """What to pass as ``provider`` to the rail's functions (None: use the rail's URL)."""
        return None

    def mint(self, address: str, amount: int) -> None:
        """Create ``amount`` atomic units of the token for ``address``."""
        contract = token_contract(self.web3, self.rail.token)
        tx_hash = contract.functions.mint(self.web3.to_checksum_address(address), amount).transact({"from": self.deployer})
        self._require_success(tx_hash, f"minting {amount} to {address}")

    def send_eth(self, address: str, wei: int) -> None:
        """Give ``address`` ether for gas, from the token owner's prefunded account."""
        from web3.types import Wei

        to = self.web3.to_checksum_address(address)
        tx_hash = self.web3.eth.send_transaction(
            {"from": self.web3.to_checksum_address(self.deployer), "to": to, "value": Wei(wei)}
        )
        self._require_success(tx_hash, f"sending {wei} wei to {address}")

    def balance(self, address: str) -> int:
        """The token balance of ``address`` in atomic units."""
        contract = token_contract(self.web3, self.rail.token)
        return int(contract.functions.balanceOf(self.web3.to_checksum_address(address)).call())

    def _require_success(self, tx_hash: Any, what: str) -> None:
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        if receipt["status"] != 1:
            raise LocalChainError(f"{what} failed on the local chain (transaction {bytes(tx_hash).hex()})")


class InProcessChain(LocalChain):
    """eth-tester with py-evm in this process: a fresh chain per instance, a block per transaction.

    py-evm dates each block at least a second after its parent, so more than one transaction
    a second runs the chain's clock ahead of the wall clock (a second per extra transaction;
    it catches up when idle), and an authorisation whose window is shorter than that lead is
    refused as expired. Use `Anvil` for sustained traffic: it keeps the wall clock.
    """

    def __init__(
        self,
        payers: Mapping[str, int] | None = None,
        *,
        token_name: str = "USD Coin",
        token_version: str = "2",
        token_symbol: str = "USDC",
        facilitator_key: str | bytes | None = None,
    ) -> None:
        from eth_tester import EthereumTester, PyEVMBackend  # type: ignore[import-untyped]
        from web3 import EthereumTesterProvider, Web3

        backend = PyEVMBackend()
        self.tester: Any = EthereumTester(backend)
        self._provider = EthereumTesterProvider(self.tester)
        self.web3 = Web3(self._provider)
        self._setup(
            rpc_url=IN_PROCESS_RPC_URL,
            keys=[key.to_hex() for key in backend.account_keys],
            payers=payers or {},
            token_name=token_name,
            token_version=token_version,
            token_symbol=token_symbol,
            facilitator_key=facilitator_key,
        )

    @property
    def provider(self) -> BaseProvider:
        return self._provider


def find_anvil(tools_folder: Path | None = None) -> Path:
    """The anvil binary npm installed in ``tools_folder``, by default ``$COLONY_NODE_TOOLS``
    or else the checkout's ``tools/node``.

    The npm package ``@foundry-rs/anvil`` carries its binary in a per-platform optional
    dependency; that binary is run directly, not through the package's node wrapper, so the
    process Colony stops is anvil itself.
    """
    package = _ANVIL_PACKAGES.get((sys.platform, platform.machine()))
    if package is None:
        raise LocalChainError(f"anvil from npm has no binary for {sys.platform}/{platform.machine()}")
    if tools_folder is None:
        tools_folder = Path(os.environ.get("COLONY_NODE_TOOLS") or _REPO_ROOT / "tools" / "node")
    binary = tools_folder / "node_modules" / "@foundry-rs" / package / "bin" / "anvil"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    raise LocalChainError(
        f"anvil is not installed in {tools_folder} — run `npm ci --ignore-scripts --no-audit --no-fund` "
        "there (bin/test does it for tools/node), which installs @foundry-rs/anvil from package-lock.json"
    )


class Anvil(LocalChain):
    """anvil on 127.0.0.1 with the token deployed; a context manager that owns the process.

    ``with Anvil({payer: 10**6}) as chain:`` starts anvil on a port it picks itself (and
    names in its log), waits until its RPC answers, deploys the token, mints for the payers
    and yields the chain; leaving the block stops anvil's process group and reaps it.
    """

    def __init__(
        self,
        payers: Mapping[str, int] | None = None,
        *,
        token_name: str = "USD Coin",
        token_version: str = "2",
        token_symbol: str = "USDC",
        facilitator_key: str | bytes | None = None,
        chain_id: int = ANVIL_CHAIN_ID,
        binary: Path | None = None,
        startup_timeout: float = 10.0,  # not money
    ) -> None:
        self._payers = dict(payers or {})
        self._facilitator_key = facilitator_key
        self._keys: list[str] = []
        self._token = (token_name, token_version, token_symbol)
        self._chain_id = chain_id
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self.rpc_url = ""

    def __enter__(self) -> Anvil:
        try:
            self._start()
            name, version, symbol = self._token
            self._setup(
                rpc_url=self.rpc_url,
                keys=self._keys,
                payers=self._payers,
                token_name=name,
                token_version=version,
                token_symbol=symbol,
                facilitator_key=self._facilitator_key,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """anvil's process id while it runs (it leads its own process group)."""
        return self._process.pid if self._process is not None else None

    def _start(self) -> None:
        import json

        from web3 import Web3
        from web3.types import RPCEndpoint

        binary = self._binary or find_anvil()
        self._folder = tempfile.TemporaryDirectory(prefix="colony-anvil-")
        folder = Path(self._folder.name)
        log_path, config_path = folder / "anvil.log", folder / "anvil.json"
        command = [
            str(binary),
            "--host", "127.0.0.1",
            "--port", "0",
            "--chain-id", str(self._chain_id),
            "--mnemonic", ANVIL_MNEMONIC,
            "--accounts", "4",
            "--config-out", str(config_path),
        ]  # fmt: skip
        with log_path.open("wb") as log:
            # Output goes to a file, not a pipe nobody drains; its own session lets stop()
            # signal the whole group.
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self._startup_timeout
        port = None
        while port is None:
            if self._process.poll() is not None:
                raise LocalChainError(f"anvil exited with {self._process.returncode}: {_tail(log_path)}")
            if time.monotonic() > deadline:
                raise LocalChainError(f"anvil did not listen within {self._startup_timeout} s: {_tail(log_path)}")
            found = _LISTENING.search(log_path.read_text(errors="replace"))
            if found:
                port = int(found.group(1))
            else:
                time.sleep(0.01)
        self.rpc_url = f"http://127.0.0.1:{port}"
        self.web3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10}))
        while True:  # "Listening" is printed as the socket opens; wait for an answer too
            try:
                if self.web3.eth.chain_id == self._chain_id:
                    break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise LocalChainError(f"anvil on {self.rpc_url} does not answer: {exc}") from exc
            time.sleep(0.01)
        # anvil logs every RPC call to its output; a long-lived node would grow that file forever.
        self.web3.provider.make_request(RPCEndpoint("anvil_setLoggingEnabled"), [False])
        self._keys = [str(key) for key in json.loads(config_path.read_text())["private_keys"]]

    def stop(self) -> None:
        """Stop anvil's process group and reap it; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                except ProcessLookupError:  # it exited between poll() and killpg()
                    process.wait()
            else:
                process.wait()
        folder, self._folder = self._folder, None
        if folder is not None:
            folder.cleanup()


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(no output)"
    except OSError:
        return "(no output)"

