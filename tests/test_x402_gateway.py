"""The node charges over x402: a priced cartridge and a hired agent on a real server, paid by the
official Python SDK's httpx client on the ``credits`` scheme; the node's facilitator endpoints;
and tempo-x402's hardening rules as runtime checks (exact amount, one success per
authorisation under concurrency, refused signatures, generic errors)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from x402 import x402Client
from x402.http.clients.httpx import x402HttpxClient
from x402.http.utils import decode_payment_required_header, decode_payment_response_header

from colony.cartridges import Cartridges
from colony.config import Settings
from colony.identity import Keyring, SchnorrKey, auth_header
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.observability.metrics import registry
from colony.payments import journal
from colony.payments.credits import CREDITS_NETWORK, CreditsClientScheme
from colony.payments.prices import agent_route, cartridge_route, set_price
from colony.store import open_database
from colony.testing import NodeServer, Reply, ScriptedModelServer

ECHO = '''
def handle(request, kv, log):
    seen = {k: v for k, v in request["headers"].items() if k.startswith("x-colony-payment-")}
    return {"status": 200, "body": {"path": request["path"], "payment": seen}}
'''
FAILING = '''
def handle(request, kv, log):
    return {"status": 500, "body": "broken"}
'''


@pytest.fixture(autouse=True)
def _shared_cache(wasm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_SANDBOX_CACHE_DIR", str(wasm_cache))


@dataclass
class Paid:
    node: NodeServer
    ledger: Ledger
    keyring: Keyring
    payer: SchnorrKey
    db: Any

    def balance(self, who: str) -> int:
        return self.ledger.balance(who).balance

    @property
    def agent(self) -> str:
        return self.keyring.agent("colony").public_hex


@pytest.fixture
def paid(settings: Settings) -> Iterator[Paid]:
    settings = settings.model_copy(update={"x402_facilitator_secret": SecretStr("s3cret-for-tests")})
    db = open_database(settings.db_path)
    keyring = Keyring(db, settings)
    keyring.ensure(announce=False)
    ledger = Ledger(SqliteLedgerStore(db), keyring.node().schnorr_key)
    carts = Cartridges(db, settings)
    carts.deploy("echo", ECHO, lang="python")
    carts.deploy("broken", FAILING, lang="python")
    set_price(db, cartridge_route("echo"), credits=250_000, evm_amount=None, pay_to="colony")
    set_price(db, cartridge_route("broken"), credits=100_000, evm_amount=None, pay_to="colony")
    payer = SchnorrKey.generate()
    ledger.mint(payer.public_hex, 2 * MICRO, "test funds")
    with NodeServer(settings) as node:
        yield Paid(node, ledger, keyring, payer, db)
    db.close()


def _client(payer: SchnorrKey, asset: str, cap: str = "1000000") -> x402Client:
    client = x402Client()
    client.register(CREDITS_NETWORK, CreditsClientScheme(payer))
    client.set_spend_controls({"allowed_assets": [{"network": CREDITS_NETWORK, "asset": asset,
                                                   "max_amount_per_payment": cap}]})
    return client


async def _pay(p: Paid, path: str, method: str = "GET", **kw: Any) -> httpx.Response:
    async with x402HttpxClient(_client(p.payer, p.ledger.node), base_url=p.node.base_url, timeout=30) as c:
        return await c.request(method, path, **kw)


def test_an_unpaid_call_gets_the_price_in_a_standard_402(paid: Paid) -> None:
    r = httpx.get(f"{paid.node.base_url}/c/echo/weather")
    assert r.status_code == 402
    required = decode_payment_required_header(r.headers["payment-required"])
    assert required.x402_version == 2
    [offer] = required.accepts
    assert (offer.scheme, offer.network, offer.asset, offer.amount, offer.pay_to) == (
        "credits", "x402:colony", paid.ledger.node, "250000", paid.agent)
    assert offer.extra["unit"] == "micro-credit" and offer.max_timeout_seconds == 300
    assert required.resource is not None and required.resource.url.endswith("/c/echo/weather")
    # The free API is untouched by the gate.
    assert httpx.get(f"{paid.node.base_url}/api/v1/health").status_code == 200


def _settled_count() -> float:
    labels = {"direction": "in", "scheme": "credits", "status": "settled"}
    return registry().get_sample_value("colony_x402_payments_total", labels) or 0.0


def test_the_official_sdk_client_pays_a_priced_cartridge_with_credits(paid: Paid) -> None:
    counted = _settled_count()
    r = asyncio.run(_pay(paid, "/c/echo/weather"))
    assert r.status_code == 200, r.text
    body = r.json()
    # The cartridge is told who paid, by the node.
    assert body["payment"] == {"x-colony-payment-payer": paid.payer.public_hex,
                               "x-colony-payment-scheme": "credits", "x-colony-payment-network": "x402:colony",
                               "x-colony-payment-asset": paid.ledger.node, "x-colony-payment-amount": "250000"}
    settled = decode_payment_response_header(r.headers["payment-response"])
    assert settled.success and settled.payer == paid.payer.public_hex and settled.amount == "250000"
    assert paid.balance(paid.payer.public_hex) == 2 * MICRO - 250_000
    assert paid.balance(paid.agent) == 250_000
    # The transaction is the payer's debit entry in the ledger, and the journal names it.
    [debit] = [e for e in paid.ledger.history(paid.payer.public_hex) if e.body.kind == "debit"]
    assert settled.transaction == debit.id
    [row] = journal.SqlitePaymentJournal(paid.db).payments(direction="in")
    assert (row.status, row.payer, row.amount, row.scheme, row.tx, row.agent) == (
        "settled", paid.payer.public_hex, "250000", "credits", debit.id, "colony")
    assert row.resource.endswith("/c/echo/weather")
    assert paid.ledger.verify().ok
    assert _settled_count() == counted + 1


def test_the_node_token_is_not_a_payment(paid: Paid) -> None:
    forged = {"x-colony-payment-payer": "f" * 64, **paid.node.auth}
    r = httpx.get(f"{paid.node.base_url}/c/echo/", headers=forged)
    assert r.status_code == 402  # priced: even the token holder pays


def test_a_failing_route_is_not_settled_and_costs_nothing(paid: Paid) -> None:
    r = asyncio.run(_pay(paid, "/c/broken"))
    assert r.status_code == 500
    assert "payment-response" not in r.headers
    assert paid.balance(paid.payer.public_hex) == 2 * MICRO
    assert journal.SqlitePaymentJournal(paid.db).payments() == []


def test_insufficient_funds_is_a_402_and_moves_nothing(paid: Paid) -> None:
    poor = SchnorrKey.generate()
    paid.ledger.mint(poor.public_hex, 100_000, "not enough")
    paid.payer = poor
    r = asyncio.run(_pay(paid, "/c/echo/x"))
    assert r.status_code == 402
    required = decode_payment_required_header(r.headers["payment-required"])
    assert required.error == "insufficient_funds"
    assert paid.balance(poor.public_hex) == 100_000 and paid.balance(paid.agent) == 0


def _signed_header(p: Paid, path: str, **changes: Any) -> str:
    """A PAYMENT-SIGNATURE header made by the SDK client for ``path`` (optionally tampered with)."""
    r = httpx.get(f"{p.node.base_url}{path}")
    required = decode_payment_required_header(r.headers["payment-required"])
    client = _client(p.payer, p.ledger.node)
    payload = client.create_payment_payload(required)
    if asyncio.iscoroutine(payload):
        payload = asyncio.run(payload)
    data = payload.model_dump(by_alias=True, exclude_none=True)
    data.update(changes)
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_one_authorisation_sent_many_times_at_once_pays_exactly_once(paid: Paid) -> None:
    header = _signed_header(paid, "/c/echo/once")

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=paid.node.base_url, timeout=30) as c:
            return list(await asyncio.gather(*(c.get("/c/echo/once", headers={"PAYMENT-SIGNATURE": header})
                                               for _ in range(12))))

    results = asyncio.run(storm())
    assert sorted(r.status_code for r in results) == [200] + [402] * 11
    assert paid.balance(paid.payer.public_hex) == 2 * MICRO - 250_000
    assert paid.balance(paid.agent) == 250_000
    statuses = sorted(r.status for r in journal.SqlitePaymentJournal(paid.db).payments(direction="in"))
    assert statuses.count("settled") == 1
    # Later, the same authorisation again: refused, nothing moves.
    again = httpx.get(f"{paid.node.base_url}/c/echo/once", headers={"PAYMENT-SIGNATURE": header})
    assert again.status_code == 402 and paid.balance(paid.agent) == 250_000


def _tampered(p: Paid, path: str, amount: int) -> str:
    """A correctly signed authorisation for ``amount`` (not the price) to the right payee."""
    r = httpx.get(f"{p.node.base_url}{path}")
    required = decode_payment_required_header(r.headers["payment-required"])
    offer = required.accepts[0].model_copy(update={"amount": str(amount)})
    inner = CreditsClientScheme(p.payer).create_payment_payload(offer)
    data = {"x402Version": 2, "accepted": required.accepts[0].model_dump(by_alias=True, exclude_none=True),
            "payload": inner}
    return base64.b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize("amount", [250_001, 249_999])
def test_only_the_exact_amount_pays(paid: Paid, amount: int) -> None:
    header = _tampered(paid, "/c/echo/exact", amount)
    r = httpx.get(f"{paid.node.base_url}/c/echo/exact", headers={"PAYMENT-SIGNATURE": header})
    assert r.status_code == 402
    assert decode_payment_required_header(r.headers["payment-required"]).error == \
        "invalid_credits_amount_mismatch"
    assert paid.balance(paid.payer.public_hex) == 2 * MICRO


@pytest.mark.parametrize("damage", ["sig", "id", "garbage", "not-json"])
def test_malformed_or_forged_payments_are_refused_with_a_generic_answer(paid: Paid, damage: str) -> None:
    header = _signed_header(paid, "/c/echo/forged")
    data = json.loads(base64.b64decode(header))
    auth = data["payload"]["authorization"]
    if damage == "sig":
        auth["sig"] = auth["sig"][:-2] + ("00" if auth["sig"][-2:] != "00" else "01")
    elif damage == "id":
        auth["content"] = auth["content"].replace('"amount":250000', '"amount":1')
    elif damage == "garbage":
        data["payload"] = {"authorization": "DROP TABLE ledger_entries; --"}
    raw = "%%% not base64 !!" if damage == "not-json" else base64.b64encode(json.dumps(data).encode()).decode()
    r = httpx.get(f"{paid.node.base_url}/c/echo/forged", headers={"PAYMENT-SIGNATURE": raw})
    assert r.status_code in (400, 402)
    assert "Traceback" not in r.text and "apsw" not in r.text and "sqlite" not in r.text.lower()
    assert paid.balance(paid.payer.public_hex) == 2 * MICRO and paid.ledger.verify().ok


def test_prices_change_at_run_time_and_a_freed_route_needs_the_token_again(paid: Paid) -> None:
    set_price(paid.db, cartridge_route("echo"), credits=500_000, evm_amount=None, pay_to="colony")
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = httpx.get(f"{paid.node.base_url}/c/echo/")
        if decode_payment_required_header(r.headers["payment-required"]).accepts[0].amount == "500000":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the new price was not picked up")
    from colony.payments.prices import remove_price

    assert remove_price(paid.db, cartridge_route("echo"))
    deadline = time.monotonic() + 5
    while httpx.get(f"{paid.node.base_url}/c/echo/").status_code == 402 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert httpx.get(f"{paid.node.base_url}/c/echo/").status_code == 401
    with_token = httpx.get(f"{paid.node.base_url}/c/echo/", headers={"x-colony-payment-payer": "f" * 64,
                                                                       **paid.node.auth})
    assert with_token.status_code == 200 and with_token.json()["payment"] == {}  # forged header dropped


# -- the facilitator endpoints --------------------------------------------------------------------


def _verify_body(p: Paid, path: str = "/c/echo/fac") -> bytes:
    header = _signed_header(p, path)
    payload = json.loads(base64.b64decode(header))
    return json.dumps({"x402Version": 2, "paymentPayload": payload,
                       "paymentRequirements": payload["accepted"]}).encode()


def test_supported_is_public_and_standard(paid: Paid) -> None:
    doc = httpx.get(f"{paid.node.base_url}/x402/supported").json()
    assert {"x402Version": 2, "scheme": "credits", "network": "x402:colony"}.items() <= doc["kinds"][0].items()
    assert paid.ledger.node in doc["signers"]["x402:*"]


def test_verify_and_settle_need_a_credential_checked_in_constant_time(paid: Paid) -> None:
    url = f"{paid.node.base_url}/x402"
    body = _verify_body(paid)
    assert httpx.post(f"{url}/verify", content=body).status_code == 401
    wrong = "sha256=" + hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    r = httpx.post(f"{url}/verify", content=body, headers={"x-colony-signature": wrong})
    assert r.status_code == 401 and "secret" not in r.text
    good = "sha256=" + hmac.new(b"s3cret-for-tests", body, hashlib.sha256).hexdigest()
    r = httpx.post(f"{url}/verify", content=body, headers={"x-colony-signature": good})
    assert r.status_code == 200 and r.json() == {"isValid": True, "payer": paid.payer.public_hex}
    # A signature over another body does not carry over.
    r = httpx.post(f"{url}/settle", content=body + b" ", headers={"x-colony-signature": good})
    assert r.status_code == 401
    # NIP-98 by one of the node's own identities settles; a stranger's key is refused.
    stranger = SchnorrKey.generate()
    r = httpx.post(f"{url}/settle", content=body,
                   headers={"authorization": auth_header(stranger, f"{url}/settle", "POST", body)})
    assert r.status_code == 401
    agent_key = paid.keyring.agent("colony").schnorr_key
    r = httpx.post(f"{url}/settle", content=body,
                   headers={"authorization": auth_header(agent_key, f"{url}/settle", "POST", body)})
    assert r.status_code == 200 and r.json()["success"] is True, r.text
    assert paid.balance(paid.agent) == 250_000
    # Settled once: the same body again is refused by the ledger, never paid twice.
    # (the same NIP-98 header again is a replay, refused before anything is read)
    replay = httpx.post(f"{url}/settle", content=body, headers={"authorization": r.request.headers["authorization"]})
    assert replay.status_code == 401
    again = httpx.post(f"{url}/settle", content=body, headers={"x-colony-signature": good})
    assert again.status_code == 200 and again.json()["success"] is False
    assert again.json()["errorReason"] == "invalid_credits_nonce_already_used"
    assert paid.balance(paid.agent) == 250_000
    bad = b'{"x402Version": 2, "paymentPayload": 7}'
    sig = "sha256=" + hmac.new(b"s3cret-for-tests", bad, hashlib.sha256).hexdigest()
    r = httpx.post(f"{url}/verify", content=bad, headers={"x-colony-signature": sig})
    assert r.status_code == 400 and r.json() == {"isValid": False, "invalidReason": "invalid_payload"}


# -- agent as a service --------------------------------------------------------------------------


def test_a_hired_agent_answers_a_paid_prompt_and_an_unpriced_one_is_not_offered(
        model: ScriptedModelServer, paid: Paid) -> None:
    base = paid.node.base_url
    r = httpx.post(f"{base}/x402/agents/colony/prompt", json={"prompt": "hello"})
    assert r.status_code == 404 and r.json()["code"] == "not_offered"
    card = httpx.get(f"{base}/api/v1/identity/agents/colony/card", headers=paid.node.auth).json()
    assert card["x402Support"] is True  # paid for the echo cartridge
    assert "x402" not in [s["name"] for s in card["services"]]  # but not for hire yet
    set_price(paid.db, agent_route("colony"), credits=400_000, evm_amount=None, pay_to="colony")
    card = httpx.get(f"{base}/api/v1/identity/agents/colony/card", headers=paid.node.auth).json()
    assert {"name": "x402", "endpoint": f"{base}/x402/agents/colony/prompt", "version": "2"} in card["services"]
    model.set_script([Reply.text("Forty-two.")])
    import time

    deadline = time.monotonic() + 5
    while httpx.post(f"{base}/x402/agents/colony/prompt", json={"prompt": "x"}).status_code != 402:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    r = asyncio.run(_pay(paid, "/x402/agents/colony/prompt", "POST", json={"prompt": "What is six times seven?"}))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["text"] == "Forty-two." and out["payer"] == paid.payer.public_hex and out["amount"] == "400000"
    assert paid.balance(paid.agent) == 400_000
