"""Interop: the official x402 SDKs pay a real `colony up` node, and the conformance checker grades it.

One node for the module (`LiveNode`: `colony up` in a subprocess, its EVM rail on a real anvil,
a python cartridge priced with ``colony cartridge deploy --price 0.25 --evm-price 10000``):

- the official Python SDK (``x402==2.25.0``) pays it through ``x402HttpxClient`` on Colony's
  ``credits`` scheme and on the SDK's own ``exact`` EVM scheme;
- the official TypeScript SDK (``@x402/fetch`` + ``@x402/evm`` 2.27.0 under Node, viem's local
  account) pays it on ``exact`` over loopback (``tools/node/pay.mjs``);
- ``x402conf resource`` and ``x402conf live`` (PyPI ``x402-conformance``) pass against the priced
  route and ``/x402/supported``.

Every payment is checked where the money is: the node's ledger (credits) or the token on anvil,
the settlement transaction's receipt, and the ``PAYMENT-RESPONSE`` the client decoded.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from x402 import x402Client
from x402.http.clients.httpx import x402HttpxClient
from x402.http.utils import decode_payment_required_header, decode_payment_response_header
from x402.mechanisms.evm import EthAccountSigner
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.schemas import PaymentRequirements

from colony.payments.credits import CREDITS_NETWORK, CreditsClientScheme
from x402_interop_helpers import CREDITS_PRICE, EVM_PRICE, LiveNode, node_tools

# The module's node (CLI steps, anvil, `colony up`) starts inside the first test's time budget.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

X402CONF = Path(sys.executable).parent / "x402conf"
NODE_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, wasm_cache: Path) -> Iterator[LiveNode]:
    with LiveNode.start(tmp_path_factory.mktemp("x402-interop"), sandbox_cache=wasm_cache) as node:
        yield node


async def _pay(client: x402Client, url: str) -> httpx.Response:
    async with x402HttpxClient(client, timeout=NODE_TIMEOUT_S) as http:
        return await http.get(url)


def _evm_tx_succeeded(live: LiveNode, tx: str) -> dict[str, Any]:
    receipt = live.chain.web3.eth.wait_for_transaction_receipt(tx, timeout=30)  # type: ignore[arg-type]
    assert receipt["status"] == 1, receipt
    return dict(receipt)


def test_the_402_offers_both_schemes_at_the_cli_prices(live: LiveNode) -> None:
    r = httpx.get(live.url("/c/echo/quote"), timeout=NODE_TIMEOUT_S)
    assert r.status_code == 402
    required = decode_payment_required_header(r.headers["payment-required"])
    assert required.x402_version == 2
    offers = {o.scheme: o for o in required.accepts if isinstance(o, PaymentRequirements)}
    credits, exact = offers["credits"], offers["exact"]
    assert (credits.network, credits.asset, credits.amount, credits.pay_to) == (
        CREDITS_NETWORK, live.node_pub, str(CREDITS_PRICE), live.agent["public_hex"])
    rail = live.chain.rail
    assert (exact.network, exact.asset, exact.amount, exact.pay_to) == (
        rail.network, rail.token, str(EVM_PRICE), live.agent["evm_address"])
    assert exact.extra == {"name": rail.token_name, "version": rail.token_version}


def test_the_python_sdk_pays_the_running_node_in_credits(live: LiveNode) -> None:
    payer, agent = live.credits_payer.public_hex, live.agent["public_hex"]
    before = (live.credits(payer), live.credits(agent))
    client = x402Client()
    client.register(CREDITS_NETWORK, CreditsClientScheme(live.credits_payer))
    client.set_spend_controls({"allowed_assets": [{"network": CREDITS_NETWORK, "asset": live.node_pub,
                                                   "max_amount_per_payment": str(CREDITS_PRICE)}]})

    r = asyncio.run(_pay(client, live.url("/c/echo/credits")))

    assert r.status_code == 200, r.text
    assert r.json()["payment"]["x-colony-payment-payer"] == payer
    assert r.json()["payment"]["x-colony-payment-scheme"] == "credits"
    settled = decode_payment_response_header(r.headers["payment-response"])
    assert settled.success, settled.error_reason
    assert (settled.payer, settled.network, settled.amount) == (payer, CREDITS_NETWORK, str(CREDITS_PRICE))
    assert (live.credits(payer), live.credits(agent)) == (before[0] - CREDITS_PRICE, before[1] + CREDITS_PRICE)
    # The transaction is the payer's debit entry on the node's ledger, which still verifies.
    debits = [e for e in live.entries(payer) if e.body.kind == "debit"]
    assert settled.transaction in {e.id for e in debits}
    assert live.ledger_verifies()


def test_the_python_sdk_pays_the_running_node_on_the_evm_rail(live: LiveNode) -> None:
    chain, rail, payee = live.chain, live.chain.rail, live.agent["evm_address"]
    payer = live.evm_payer
    before = (chain.balance(payer.address), chain.balance(payee))
    gas_before = chain.web3.eth.get_balance(live.node_evm)  # type: ignore[arg-type]
    client = x402Client()
    client.register(rail.network, ExactEvmClientScheme(EthAccountSigner(Account.from_key(payer.key))))
    client.set_spend_controls({"allowed_assets": [{"network": rail.network, "asset": rail.token,
                                                   "max_amount_per_payment": str(EVM_PRICE)}]})

    r = asyncio.run(_pay(client, live.url("/c/echo/evm")))

    assert r.status_code == 200, r.text
    assert r.json()["payment"]["x-colony-payment-payer"].lower() == payer.address.lower()
    assert r.json()["payment"]["x-colony-payment-scheme"] == "exact"
    settled = decode_payment_response_header(r.headers["payment-response"])
    assert settled.success, settled.error_reason
    assert (settled.payer, settled.network) == (payer.address, rail.network)
    assert (chain.balance(payer.address), chain.balance(payee)) == (before[0] - EVM_PRICE, before[1] + EVM_PRICE)
    receipt = _evm_tx_succeeded(live, settled.transaction)
    # The node's own EVM account sent the transfer to the token, and paid its gas.
    assert (receipt["from"], receipt["to"]) == (live.node_evm, rail.token)
    assert chain.web3.eth.get_balance(live.node_evm) < gas_before  # type: ignore[arg-type]


def test_the_typescript_sdk_pays_the_running_node_on_the_evm_rail(live: LiveNode) -> None:
    node = shutil.which("node")
    script = node_tools() / "pay.mjs"
    if node is None:
        pytest.fail("Node.js is not installed: install Node 20+ (Debian: apt-get install nodejs npm)")
    assert (node_tools() / "node_modules" / "@x402" / "fetch").is_dir(), \
        "the x402 TypeScript SDK is not installed in tools/node: run bin/test (npm ci --ignore-scripts)"
    chain, rail, payee = live.chain, live.chain.rail, live.agent["evm_address"]
    payer = live.ts_payer
    before = (chain.balance(payer.address), chain.balance(payee))

    run = subprocess.run(
        [node, str(script), "--url", live.url("/c/echo/typescript"), "--network", rail.network,
         "--asset", rail.token, "--max", str(EVM_PRICE), "--timeout", str(int(NODE_TIMEOUT_S))],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "X402_PAYER_KEY": "0x" + bytes(payer.key).hex()},
        cwd=node_tools(), capture_output=True, text=True, timeout=NODE_TIMEOUT_S + 30, stdin=subprocess.DEVNULL)

    assert run.returncode == 0, f"pay.mjs failed: {run.stdout}\n{run.stderr}"
    out = json.loads(run.stdout)
    assert out["status"] == 200, out
    assert out["payer"] == payer.address
    assert out["body"]["payment"]["x-colony-payment-payer"].lower() == payer.address.lower()
    settled = out["paymentResponse"]
    assert settled["success"] is True, settled
    assert (settled["payer"], settled["network"]) == (payer.address, rail.network)
    assert (chain.balance(payer.address), chain.balance(payee)) == (before[0] - EVM_PRICE, before[1] + EVM_PRICE)
    receipt = _evm_tx_succeeded(live, settled["transaction"])
    assert (receipt["from"], receipt["to"]) == (live.node_evm, rail.token)


def _x402conf(*args: str) -> dict[str, bool]:
    """Run ``x402conf … --fail-on-error``; {check id: passed} of every check it ran, all severities."""
    run = subprocess.run([str(X402CONF), *args, "--fail-on-error"], capture_output=True, text=True,
                         timeout=NODE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, f"x402conf {args[0]} failed:\n{run.stdout}\n{run.stderr}"
    report, _ = json.JSONDecoder().raw_decode(run.stdout.lstrip())  # the JSON report, then a summary
    return {c["check"].split()[0]: c["pass"] for r in report["results"] for c in r["checks"]}


def test_x402conf_passes_the_priced_route(live: LiveNode) -> None:
    checks = _x402conf("resource", live.url("/c/echo/conformance"))
    assert set(checks) >= {"P1", "P2", "P3", "P4", "P5", "P6", "P7"}
    assert all(checks.values()), checks  # warnings included


def test_x402conf_passes_the_nodes_facilitator(live: LiveNode) -> None:
    checks = _x402conf("live", live.url("/x402"))
    assert set(checks) >= {"S1", "S2", "S3", "S4"}
    assert all(checks.values()), checks
    supported = httpx.get(live.url("/x402/supported"), timeout=NODE_TIMEOUT_S).json()
    kinds = {(k["scheme"], k["network"]) for k in supported["kinds"]}
    assert {("credits", CREDITS_NETWORK), ("exact", live.chain.rail.network)} <= kinds
    assert live.node_evm in supported["signers"]["eip155:*"]
