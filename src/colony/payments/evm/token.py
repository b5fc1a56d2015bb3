"""The EIP-3009 token that Colony deploys on local chains, and its committed build.

No EIP-3009 token ships in any package, and local chains (the in-process EVM, anvil) start
empty, so Colony carries its own: `contracts/EIP3009Token.vy`. Runtime loads the compiled
artefact next to it (`EIP3009Token.json`) and never needs the compiler; `compile_artefact`
rebuilds it from the source with the vyper package, and a test asserts the two are equal, so
the source and the committed bytecode cannot drift. Regenerate after editing the source:

    .venv/bin/python -c "from colony.payments.evm.token import write_artefact; write_artefact()"

Vyper has no function overloading, so the contract serves the `bytes signature` form of
`transferWithAuthorization` from its fallback; the artefact's ABI lists that form as well
(`BYTES_SIGNATURE_ABI`), as callers (the x402 facilitator among them) address it by that
signature.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress
    from web3 import Web3
    from web3.contract import Contract

__all__ = [
    "ARTEFACT_PATH",
    "BYTES_SIGNATURE_ABI",
    "SOURCE_PATH",
    "TokenArtefact",
    "compile_artefact",
    "deploy_token",
    "load_artefact",
    "token_contract",
    "write_artefact",
]

_CONTRACTS = Path(__file__).parent / "contracts"
SOURCE_PATH = _CONTRACTS / "EIP3009Token.vy"
ARTEFACT_PATH = _CONTRACTS / "EIP3009Token.json"

#: The overload the contract dispatches by hand in `__default__` (see the module docstring).
BYTES_SIGNATURE_ABI: dict[str, Any] = {
    "stateMutability": "nonpayable",
    "type": "function",
    "name": "transferWithAuthorization",
    "inputs": [
        {"name": "_from", "type": "address"},
        {"name": "_to", "type": "address"},
        {"name": "_value", "type": "uint256"},
        {"name": "_validAfter", "type": "uint256"},
        {"name": "_validBefore", "type": "uint256"},
        {"name": "_nonce", "type": "bytes32"},
        {"name": "_signature", "type": "bytes"},
    ],
    "outputs": [],
}


@dataclass(frozen=True)
class TokenArtefact:
    """What deploying and calling the token needs, plus what proves where it came from."""

    abi: list[dict[str, Any]]
    bytecode: str
    vyper_version: str
    source_sha256: str

    def to_json(self) -> str:
        body = {
            "contractName": "EIP3009Token",
            "compiler": f"vyper {self.vyper_version}",
            "sourceSha256": self.source_sha256,
            "abi": self.abi,
            "bytecode": self.bytecode,
        }
        return json.dumps(body, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TokenArtefact:
        body = json.loads(text)
        return cls(
            abi=list(body["abi"]),
            bytecode=str(body["bytecode"]),
            vyper_version=str(body["compiler"]).removeprefix("vyper "),
            source_sha256=str(body["sourceSha256"]),
        )


@functools.cache
def load_artefact() -> TokenArtefact:
    """The committed build; cached, since it never changes while a process runs."""
    return TokenArtefact.from_json(ARTEFACT_PATH.read_text(encoding="utf-8"))


def compile_artefact() -> TokenArtefact:
    """Build the artefact from the source with the installed vyper (offline, ~1 s)."""
    # Imported by name: vyper is a build-time tool, untyped, and absent where only the
    # committed artefact is used.
    vyper: Any = importlib.import_module("vyper")
    source = SOURCE_PATH.read_text(encoding="utf-8")
    out = vyper.compile_code(source, contract_path=SOURCE_PATH.name, output_formats=["abi", "bytecode"])
    return TokenArtefact(
        abi=[*out["abi"], BYTES_SIGNATURE_ABI],
        bytecode=str(out["bytecode"]),
        vyper_version=str(vyper.__long_version__),
        source_sha256=hashlib.sha256(source.encode()).hexdigest(),
    )


def write_artefact() -> Path:
    ARTEFACT_PATH.write_text(compile_artefact().to_json(), encoding="utf-8")
    load_artefact.cache_clear()
    return ARTEFACT_PATH


def token_contract(web3: Web3, address: str) -> Contract:
    from web3 import Web3 as _Web3

    return web3.eth.contract(address=_Web3.to_checksum_address(address), abi=load_artefact().abi)


def deploy_token(web3: Web3, deployer: str, *, name: str, version: str, symbol: str = "USDC") -> ChecksumAddress:
    """Deploy the token from ``deployer``, who becomes its owner (the only one who can mint).

    Meant for local chains, whose node holds the deployer's key unlocked (eth-tester's and
    anvil's prefunded accounts), so the transaction is sent with ``eth_sendTransaction``.
    """
    artefact = load_artefact()
    factory = web3.eth.contract(abi=artefact.abi, bytecode=artefact.bytecode)
    tx_hash = factory.constructor(name, symbol, version).transact({"from": web3.to_checksum_address(deployer)})
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash)
    address = receipt["contractAddress"]
    if receipt["status"] != 1 or address is None:
        raise RuntimeError(f"deploying EIP3009Token failed (transaction {tx_hash.hex()})")
    return address
