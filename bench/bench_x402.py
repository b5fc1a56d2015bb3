"""Benchmark paid requests over x402: Colony's node against the official SDK's stock in-process stack.

Run with ``.venv/bin/python bench/bench_x402.py [--credits N] [--anvil N] [--in-process N]
[--payers 16] [--per-payer 10]`` (anvil comes from ``tools/node``: ``bin/test`` installs it).

Every request is a full paid call by the official Python SDK client (``x402HttpxClient``): the
unpaid request, the 402 with ``PAYMENT-REQUIRED``, the client signing, the retry with
``PAYMENT-SIGNATURE``, verify, the handler, settle, the 200 with ``PAYMENT-RESPONSE`` — one
client, requests one after another, over loopback. Client and server share this process (and
its GIL), so the latencies include the client's signing.

1. ``credits`` on a Colony node: ``colony.testing.NodeServer`` (the app ``colony up`` serves, in a
   thread) with ``GET /api/v1/ready`` priced (its handler is one ``SELECT 1``, so the figure is
   the payment path: the gate, the SDK middleware, the ledger's verify and settle, the journal).
2. ``exact`` (EIP-3009) on the same node, on anvil (a real JSON-RPC node) and on an in-process
   chain (eth-tester with py-evm; a node's settings can only name a chain by URL, so the
   benchmark hands its provider to the node's payments object before the first request) — with
   Colony's guard (`colony.payments.evm_guard`: nonce claimed in the database, per-payer lock,
   simulation before sending) — against the same payments through the SDK's stock parts only: a
   FastAPI app with the SDK's ``payment_middleware``, ``x402ResourceServer`` over an
   ``x402FacilitatorSync`` with the SDK's ``ExactEvmFacilitatorScheme`` (default configuration:
   no simulation in settle), called from a worker thread (the async resource server awaits its
   facilitator; the sync facilitator blocks), served by uvicorn on loopback. Each case gets a
   fresh chain (py-evm dates each block at least a second after its parent, so a long run would
   push an in-process chain's clock past the authorisations' windows).
3. Concurrency on ``credits``: ``--payers`` payers at once, each with its own client, each funded
   for ``--per-payer`` payments and sending two more than that, all in flight together. Exactly
   ``payers × per-payer`` must settle, the rest be refused with 402, every payer end at zero, the
   payee hold the sum, and ``colony ledger verify``'s checks pass: no double spend.

Prints the machine (CPU model, cores) and its load before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import percentile

PRICE_CREDITS = 1_000  # micro-credits
PRICE_TOKEN = 10_000  # atomic units of a 6-decimal token
ROUTE = "GET /api/v1/ready"
PATH = "/api/v1/ready"
#: Who the stock app's route pays (any address that is not the payer's or the facilitator's).
STOCK_PAYEE = "0x" + "42" * 20
#: Paid requests before the clock starts (connections opened, first-use imports and caches filled); they
#: are paid and counted in the balance checks, not in the figures.
WARMUP = 10


# -- the machine -----------------------------------------------------------------------------------
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) / {five:.2f} (5 min)"


# -- results ---------------------------------------------------------------------------------------
@dataclass
class Run:
    case: str
    latencies: list[float]
    wall_s: float
    paid: int

    @property
    def per_s(self) -> float:
        return self.paid / self.wall_s

    def row(self) -> str:
        return (f"| {self.case} | {self.paid} | {self.per_s:,.1f} | {statistics.median(self.latencies) * 1000:.1f} ms "
                f"| {percentile(self.latencies, 99) * 1000:.1f} ms |")


# -- clients ---------------------------------------------------------------------------------------
def credits_client(payer: Any, ledger_node: str) -> Any:
    from x402 import x402Client

    from colony.payments.credits import CREDITS_NETWORK, CreditsClientScheme

    client = x402Client()
    client.register(CREDITS_NETWORK, CreditsClientScheme(payer))
    client.set_spend_controls({"allowed_assets": [{"network": CREDITS_NETWORK, "asset": ledger_node,
                                                   "max_amount_per_payment": str(PRICE_CREDITS)}]})
    return client


def evm_client(rail: Any, key: str) -> Any:
    from x402 import x402Client

    from colony.payments.evm import allowed_asset, client_scheme

    client = x402Client()
    client.register(rail.network, client_scheme(key))
    client.set_spend_controls({"allowed_assets": [allowed_asset(rail, PRICE_TOKEN)]})
    return client


async def _sequential(client: Any, url: str, n: int, warmup: int = WARMUP) -> tuple[list[float], float]:
    from x402.http.clients.httpx import x402HttpxClient
    from x402.http.utils import decode_payment_response_header

    latencies = []
    wall0 = time.perf_counter()
    async with x402HttpxClient(client, timeout=60) as http:
        for i in range(warmup + n):
            start = time.perf_counter()
            r = await http.get(url)
            elapsed = time.perf_counter() - start
            if r.status_code != 200 or not decode_payment_response_header(r.headers["payment-response"]).success:
                raise RuntimeError(f"payment {i} failed: {r.status_code} {r.headers.get('payment-required', '')[:80]}")
            if i == warmup - 1:
                wall0 = time.perf_counter()
            if i >= warmup:
                latencies.append(elapsed)
    return latencies, time.perf_counter() - wall0


def sequential(case: str, client: Any, url: str, n: int) -> Run:
    latencies, wall = asyncio.run(_sequential(client, url, n))
    return Run(case, latencies, wall, n)


# -- servers ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def colony_node(folder: Path, rail_env: dict[str, str] | None = None, *, evm: bool = False) -> Iterator[Any]:
    """A NodeServer in its own data directory with ``ROUTE`` priced in credits (and the token if ``evm``)."""
    from colony.config import Settings
    from colony.payments.prices import set_price
    from colony.store import open_database
    from colony.testing import NodeServer

    for key in [k for k in os.environ if k.startswith("COLONY_X402_")]:
        del os.environ[key]
    os.environ.update(COLONY_HOME=str(folder / "home"), COLONY_WORKSPACE=str(folder))
    os.environ.update(rail_env or {})
    settings = Settings()
    db = open_database(settings.db_path)
    try:
        from colony.identity import Keyring

        keyring = Keyring(db, settings)
        keyring.ensure(announce=False)
        set_price(db, ROUTE, credits=PRICE_CREDITS, evm_amount=PRICE_TOKEN if evm else None, pay_to="colony")
        with NodeServer(settings) as node:
            yield node, db, keyring
    finally:
        db.close()


def node_ledger(db: Any, keyring: Any) -> Any:
    from colony.ledger import Ledger, SqliteLedgerStore

    return Ledger(SqliteLedgerStore(db), keyring.node().schnorr_key)


def give_node_an_in_process_chain(node: Any, chain: Any) -> None:
    """The node's EVM rail on ``chain`` (eth-tester): settings name chains by URL only, so its
    payments object gets the rail and the facilitator `NodePayments.facilitator` would build, on the
    chain's provider, before anything reads them."""
    from colony.payments.evm import facilitator_scheme
    from colony.payments.evm_guard import GuardedExactEvm
    from colony.payments.facilitator import build_facilitator

    payments = node.server.config.app.state.payments
    assert "rail" not in payments.__dict__ and "facilitator" not in payments.__dict__, "used before the chain was set"
    payments.__dict__["rail"] = chain.rail
    gas_key = bytes(payments.node.keyring.node().evm_account.key)
    facilitator = build_facilitator(payments.ledger, locks=payments.locks)
    facilitator.register([chain.rail.network], GuardedExactEvm(
        facilitator_scheme(chain.rail, gas_key, chain.provider, simulate_in_settle=False), payments.db,
        locks=payments.locks))
    payments.__dict__["facilitator"] = facilitator
    payments.refresh()


class _ThreadedSyncFacilitator:
    """The SDK's sync facilitator behind the async client protocol, in a worker thread (nothing else)."""

    def __init__(self, facilitator: Any) -> None:
        self.facilitator = facilitator

    def get_supported(self) -> Any:
        return self.facilitator.get_supported()

    async def verify(self, payload: Any, requirements: Any) -> Any:
        return await asyncio.to_thread(self.facilitator.verify, payload, requirements)

    async def settle(self, payload: Any, requirements: Any) -> Any:
        return await asyncio.to_thread(self.facilitator.settle, payload, requirements)


@contextlib.contextmanager
def stock_app(chain: Any, pay_to: str) -> Iterator[str]:
    """The SDK's stock parts only, on uvicorn on loopback; yields the paid URL."""
    import uvicorn
    from fastapi import FastAPI
    from x402 import x402FacilitatorSync, x402ResourceServer
    from x402.http.middleware.fastapi import payment_middleware
    from x402.http.types import PaymentOption, RouteConfig
    from x402.mechanisms.evm import FacilitatorWeb3Signer
    from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme, ExactEvmServerScheme
    from x402.schemas import AssetAmount

    from colony.payments.evm import facilitator_scheme, price
    from colony.server.run import free_port

    rail = chain.rail
    if chain.provider is None:  # anvil: the SDK's own signer on the RPC URL
        scheme = ExactEvmFacilitatorScheme(FacilitatorWeb3Signer(chain.facilitator_key, rpc_url=rail.rpc_url))
    else:  # eth-tester: the SDK's scheme and signer, its web3 on the provider (no URL to give it)
        scheme = facilitator_scheme(rail, chain.facilitator_key, chain.provider, simulate_in_settle=False)
    facilitator = x402FacilitatorSync()
    facilitator.register([rail.network], scheme)
    server = x402ResourceServer(_ThreadedSyncFacilitator(facilitator))
    server.register(rail.network, ExactEvmServerScheme())  # type: ignore[no-untyped-call,arg-type]  # SDK typing
    routes = {ROUTE: RouteConfig(accepts=[PaymentOption(scheme="exact", network=rail.network, pay_to=pay_to,
                                                        max_timeout_seconds=300,
                                                        price=AssetAmount(**price(rail, PRICE_TOKEN)))])}
    app = FastAPI()

    @app.get(PATH)
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    app.middleware("http")(payment_middleware(routes, server))
    port = free_port("127.0.0.1")
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stock app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}{PATH}"
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


# -- the cases -------------------------------------------------------------------------------------
def run_credits(tmp: Path, n: int) -> Run:
    from colony.identity import SchnorrKey

    with colony_node(tmp / "credits") as (node, db, keyring):
        ledger = node_ledger(db, keyring)
        payer = SchnorrKey.generate()
        ledger.mint(payer.public_hex, (n + WARMUP + 5) * PRICE_CREDITS, "benchmark funds")
        run = sequential("credits — Colony node", credits_client(payer, ledger.node), node.base_url + PATH, n)
        assert ledger.balance(payer.public_hex).balance == 5 * PRICE_CREDITS  # n + WARMUP paid, exactly
        return run


def _evm_payer() -> Any:
    from eth_account import Account
    from eth_utils.crypto import keccak

    return Account.from_key(keccak(text="colony-bench-x402-payer"))


def run_evm(tmp: Path, chain_kind: str, n: int) -> tuple[Run, Run]:
    from colony.payments.evm.local import Anvil, InProcessChain

    payer = _evm_payer()
    key = "0x" + bytes(payer.key).hex()
    runs = []
    for stack in ("colony", "stock"):
        chain_cm = Anvil({payer.address: 10**12}) if chain_kind == "anvil" else \
            contextlib.nullcontext(InProcessChain({payer.address: 10**12}))
        with chain_cm as chain:
            before = chain.balance(payer.address)
            if stack == "colony":
                rail_env = {} if chain_kind != "anvil" else {
                    "COLONY_X402_EVM_RPC_URL": chain.rail.rpc_url, "COLONY_X402_EVM_CHAIN_ID": str(chain.rail.chain_id),
                    "COLONY_X402_EVM_TOKEN": chain.rail.token, "COLONY_X402_EVM_TOKEN_NAME": chain.rail.token_name,
                    "COLONY_X402_EVM_TOKEN_VERSION": chain.rail.token_version}
                with colony_node(tmp / f"evm-{chain_kind}", rail_env, evm=True) as (node, _, kr):
                    if chain_kind != "anvil":
                        give_node_an_in_process_chain(node, chain)
                    chain.send_eth(kr.node().evm_address, 10**18)  # the node's own account pays the gas
                    run = sequential(f"exact, {chain_kind} — Colony node", evm_client(chain.rail, key),
                                     node.base_url + PATH, n)
                    pay_to = kr.agent("colony").evm_address
            else:
                pay_to = STOCK_PAYEE
                with stock_app(chain, pay_to) as url:
                    run = sequential(f"exact, {chain_kind} — SDK stock facilitator", evm_client(chain.rail, key),
                                     url, n)
            assert chain.balance(pay_to) == (n + WARMUP) * PRICE_TOKEN
            assert chain.balance(payer.address) == before - (n + WARMUP) * PRICE_TOKEN
            runs.append(run)
    return runs[0], runs[1]


async def _storm(node: Any, payers: list[Any], ledger_node: str, attempts: int) -> tuple[list[float], list[int], float]:
    from x402.http.clients.httpx import x402HttpxClient
    from x402.http.utils import decode_payment_required_header, decode_payment_response_header

    latencies: list[float] = []
    statuses: list[int] = []
    reasons: list[str] = []

    async def one(http: Any) -> None:
        start = time.perf_counter()
        r = await http.get(node.base_url + PATH)
        if r.status_code == 200:
            latencies.append(time.perf_counter() - start)
        elif "payment-response" in r.headers:  # refused at settle
            reasons.append(str(decode_payment_response_header(r.headers["payment-response"]).error_reason))
        elif "payment-required" in r.headers:  # refused at verify
            reasons.append(str(decode_payment_required_header(r.headers["payment-required"]).error))
        statuses.append(r.status_code)

    clients = [x402HttpxClient(credits_client(p, ledger_node), timeout=120) for p in payers]
    wall0 = time.perf_counter()
    try:
        await asyncio.gather(*(one(c) for c in clients for _ in range(attempts)))
    finally:
        for c in clients:
            await c.aclose()
    assert set(reasons) <= {"insufficient_funds"}, reasons
    return latencies, statuses, time.perf_counter() - wall0


def run_concurrent(tmp: Path, payers_n: int, per_payer: int) -> tuple[Run, int]:
    from colony.identity import SchnorrKey
    from colony.payments import journal

    with colony_node(tmp / "concurrent") as (node, db, keyring):
        ledger = node_ledger(db, keyring)
        agent = keyring.agent("colony").public_hex
        payers = [SchnorrKey.generate() for _ in range(payers_n)]
        for p in payers:
            ledger.mint(p.public_hex, per_payer * PRICE_CREDITS, "benchmark funds")
        supply = ledger.store.supply()
        latencies, statuses, wall = asyncio.run(_storm(node, payers, ledger.node, per_payer + 2))
        settled = statuses.count(200)
        assert settled == payers_n * per_payer, f"{settled} settled, expected {payers_n * per_payer}: double spend?"
        assert statuses.count(402) == 2 * payers_n, statuses
        assert all(ledger.balance(p.public_hex).balance == 0 for p in payers)
        assert ledger.balance(agent).balance == settled * PRICE_CREDITS
        assert ledger.store.supply() == supply
        report = ledger.verify()
        assert report.ok, report
        rows = journal.SqlitePaymentJournal(db).payments(direction="in", limit=10_000)
        assert sum(r.status == "settled" for r in rows) == settled
        case = f"credits, {payers_n} payers at once — Colony node"
        return Run(case, latencies, wall, settled), len(statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credits", type=int, default=300, help="paid requests on credits")
    parser.add_argument("--anvil", type=int, default=150, help="paid requests per stack on anvil")
    parser.add_argument("--in-process", type=int, default=50, help="paid requests per stack on eth-tester")
    parser.add_argument("--payers", type=int, default=16)
    parser.add_argument("--per-payer", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-x402-") as tmp:
        # A throw-away node: its own data and key folders, test-strength key encryption (keys are
        # encrypted once at creation; nothing measured here touches it), quiet logs.
        os.environ.update(XDG_CONFIG_HOME=str(Path(tmp) / "config"), COLONY_INSECURE_TEST_KDF="true",
                          COLONY_AUTODETECT_LOCAL_MODELS="false", COLONY_LOG_LEVEL="WARNING")
        import logging

        logging.disable(logging.WARNING)
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, Python "
              f"{platform.python_version()}; {load()} at start")
        started = time.perf_counter()
        runs = [run_credits(Path(tmp), args.credits)]
        runs += run_evm(Path(tmp), "anvil", args.anvil)
        runs += run_evm(Path(tmp), "in-process", args.in_process)
        storm, attempts = run_concurrent(Path(tmp), args.payers, args.per_payer)
        runs.append(storm)
    print("\npaid requests through the official Python SDK client (402, sign, retry, verify, handler, settle)")
    print("| case | paid | paid/s | p50 | p99 |\n|---|---|---|---|---|")
    for run in runs:
        print(run.row())
    print(f"\nconcurrency: {attempts} requests by {args.payers} payers at once, each funded for {args.per_payer}: "
          f"{storm.paid} settled, {attempts - storm.paid} refused (402) in {storm.wall_s:.2f} s "
          f"({attempts / storm.wall_s:,.0f} answers/s); every payer at 0, the payee holds the sum, ledger verifies")
    print(f"\n{load()} at end; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
