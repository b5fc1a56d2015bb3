"""Agent cards: ERC-8004-shaped, public, signed by the agent, refused when anything is off; and
the identity API and CLI that show and add agents (public parts only, never a key)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from colony.config import Settings
from colony.errors import IdentityError
from colony.identity import (
    CARD_KIND,
    REGISTRATION_TYPE,
    SchnorrKey,
    agent_card,
    agent_identity,
    card_event,
    create_agent,
    node_identity,
    sign_event,
    verify_card_event,
    verify_event,
)
from colony.identity.evm import prove_binding
from colony.node import Node
from colony.server.app import create_app
from colony.server.turns import ApprovalBroker

TOKEN = "k" * 43
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COLONY = [sys.executable, "-m", "colony"]
ERC8004_FIELDS = {"type", "name", "description", "image", "services", "x402Support", "active", "registrations",
                  "supportedTrust"}


@pytest.fixture
def web(settings: Settings) -> Iterator[tuple[TestClient, Node]]:
    broker = ApprovalBroker()
    node = Node(settings, approver=broker)
    with TestClient(create_app(node, broker, token=TOKEN, connect_model=False), base_url="http://127.0.0.1:8420") as c:
        yield c, node


def secrets_of(node: Node) -> list[str]:
    found = []
    for name in ("node", "colony"):
        ident = node.keyring.get(name)
        found += [ident.schnorr_key.secret.hex(), bytes(ident.evm_account.key).hex()]
    return found


def test_a_card_has_erc8004_fields_and_colony_extension(web: tuple[TestClient, Node]) -> None:
    client, node = web
    card = client.get("/api/v1/identity/agents/colony/card").json()  # no token: cards are public
    assert set(card) >= ERC8004_FIELDS and card["type"] == REGISTRATION_TYPE
    agent, me = agent_identity(node), node_identity(node)
    assert card["name"] == "colony" and card["active"] is True and card["x402Support"] is False
    assert card["registrations"] == [] and card["supportedTrust"] == []
    assert all({"name", "endpoint"} <= set(s) for s in card["services"])
    endpoints = {s["name"]: s["endpoint"] for s in card["services"]}
    assert endpoints["web"] == "http://127.0.0.1:8420/" and endpoints["colony-api"] == "http://127.0.0.1:8420/api/v1"
    ext = card["colony"]
    assert (ext["pubkey"], ext["npub"], ext["evmAddress"]) == (agent.public_hex, agent.npub, agent.evm_address)
    assert ext["node"] == {"pubkey": me.public_hex, "npub": me.npub} and ext["skills"] == []
    assert client.get("/.well-known/agent-registration.json").json() == card


def test_the_signed_card_verifies_and_names_its_signer(web: tuple[TestClient, Node]) -> None:
    client, node = web
    r = client.get("/api/v1/identity/agents/colony/card/event")
    assert r.status_code == 200
    event = r.json()
    agent = agent_identity(node)
    assert event["kind"] == CARD_KIND and event["pubkey"] == agent.public_hex and verify_event(event)
    card = verify_card_event(event)
    assert card == json.loads(event["content"]) == client.get("/api/v1/identity/agents/colony/card").json()


def _tampered(event: dict[str, Any], how: str) -> dict[str, Any]:
    card = json.loads(event["content"])
    if how == "content edited, old signature":
        return {**event, "content": event["content"].replace('"active":true', '"active":false')}
    if how == "re-signed by another key":
        return sign_event(SchnorrKey.generate(), CARD_KIND, event["content"]).model_dump()
    if how == "wrong kind":
        return sign_event(SchnorrKey.generate(), 1, event["content"]).model_dump()
    key = SchnorrKey.generate()
    card["colony"]["pubkey"], card["colony"]["npub"] = key.public_hex, key.npub
    if how == "someone else's EVM address":
        card["colony"]["evmAddress"] = Account.create().address  # keeps the proof of the real one
    elif how == "a proof for another key":
        other = Account.create()
        card["colony"]["evmAddress"] = other.address
        card["colony"]["evmBindingProof"] = prove_binding(bytes(other.key), "ab" * 32)
    elif how == "not a registration file":
        card["type"] = "something else"
        other = Account.create()
        card["colony"]["evmAddress"] = other.address
        card["colony"]["evmBindingProof"] = prove_binding(bytes(other.key), key.public_hex)
    return sign_event(key, CARD_KIND, json.dumps(card)).model_dump()


@pytest.mark.parametrize("how", ["content edited, old signature", "re-signed by another key", "wrong kind",
                                 "someone else's EVM address", "a proof for another key", "not a registration file"])
def test_a_card_that_was_tampered_with_does_not_verify(web: tuple[TestClient, Node], how: str) -> None:
    client, _ = web
    event = client.get("/api/v1/identity/agents/colony/card/event").json()
    with pytest.raises(IdentityError) as info:
        verify_card_event(_tampered(event, how))
    assert info.value.reason == "invalid" and "does not verify" in str(info.value)


def test_a_card_of_a_new_agent_carries_its_skills_and_its_own_keys(settings: Settings) -> None:
    node = Node(settings)
    try:
        scout = create_agent(node, "scout", skills=["search", "summarise"], description="Finds sources.")
        card = agent_card(scout, node_identity(node), "https://colony.example.org/")
        signed = card_event(scout, card)
    finally:
        node.db.close()
    assert card["description"] == "Finds sources." and card["colony"]["skills"] == ["search", "summarise"]
    assert card["services"][0]["endpoint"] == "https://colony.example.org/"
    assert verify_card_event(signed) == card and signed.pubkey == scout.public_hex


def test_the_identity_api_lists_and_adds_agents_with_public_parts_only(web: tuple[TestClient, Node]) -> None:
    client, node = web
    assert client.get("/api/v1/identity").status_code == 401  # the operator's list needs the token
    assert client.post("/api/v1/identity/agents", json={"name": "scout"}).status_code == 401
    listed = client.get("/api/v1/identity", headers=AUTH)
    assert listed.status_code == 200
    data = listed.json()
    assert data["node"]["role"] == "node" and [a["name"] for a in data["agents"]] == ["colony"]
    assert set(data["node"]) == {"name", "role", "public_hex", "npub", "evm_address", "description", "skills",
                                 "created_at"}
    made = client.post("/api/v1/identity/agents", headers=AUTH,
                       json={"name": "scout", "skills": ["search"], "description": "Finds sources."})
    assert made.status_code == 201 and made.json()["agent"]["skills"] == ["search"]
    assert client.get("/api/v1/identity/agents/scout/card").json()["colony"]["skills"] == ["search"]
    dup = client.post("/api/v1/identity/agents", headers=AUTH, json={"name": "scout"})
    assert dup.status_code == 409 and dup.json()["code"] == "conflict"
    for bad in ({"name": "Scout"}, {"name": "x", "skills": [""]}, {"name": "x", "extra": 1},
                {"name": "x", "skills": ["s"] * 33}):
        r = client.post("/api/v1/identity/agents", headers=AUTH, json=bad)
        assert r.status_code == 422 and set(r.json()) >= {"code", "message"}, bad
    for missing in ("nobody", "node"):  # the node's identity has no agent card
        r = client.get(f"/api/v1/identity/agents/{missing}/card")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert client.get("/api/v1/identity/agents/Bad%20Name/card").status_code == 422
    everything = json.dumps([client.get("/api/v1/identity", headers=AUTH).json(),
                             client.get("/api/v1/identity/agents/colony/card/event").json()])
    assert "keyfile" not in everything and "ciphertext" not in everything
    assert not any(secret in everything for secret in secrets_of(node))


def test_the_cli_shows_cards_and_adds_agents() -> None:
    env = {**os.environ, "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*COLONY, *args], capture_output=True, text=True, timeout=120, env=env)

    added = cli("identity", "add", "scout", "--skill", "search", "--skill", "summarise", "--json")
    assert added.returncode == 0, added.stderr
    scout = json.loads(added.stdout)
    assert scout["skills"] == ["search", "summarise"] and scout["npub"].startswith("npub1")
    card = json.loads(cli("identity", "card", "scout", "--json").stdout)
    assert card["colony"]["pubkey"] == scout["public_hex"] and card["type"] == REGISTRATION_TYPE
    assert card["services"][0]["endpoint"] == "http://127.0.0.1:8420/"
    event = json.loads(cli("identity", "card", "scout", "--event").stdout)
    assert verify_card_event(event) == card
    shown = cli("identity", "show")
    assert shown.returncode == 0 and "scout" in shown.stdout and scout["evm_address"] in shown.stdout
    taken = cli("identity", "add", "scout")
    assert taken.returncode == 1 and "already exists" in taken.stderr
    unknown = cli("identity", "card", "nobody")
    assert unknown.returncode == 1 and "colony identity show" in unknown.stderr
    helped = cli("identity", "add", "--help")
    assert helped.returncode == 0 and "Examples" in helped.stdout and "--skill" in helped.stdout
