"""`/api/v1/agents` on the real app (lifespan included): the happy path, bodies outside the schema,
auth, unknown and deactivated agents, the OpenAPI document; agent cards carrying the profile; and
the Agents page (list, form, CSRF, escaping)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from colony.config import ProviderConfig, Settings
from colony.identity import verify_card_event
from colony.node import Node
from colony.server import create_app
from colony.server.turns import ApprovalBroker

TOKEN = "agents-api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCOUT: dict[str, Any] = {
    "name": "scout", "persona": "You find things in the workspace.", "tier": "local", "skills": ["search"],
    "description": "Finds files.",
    "cost": {"input_per_1k": 20, "output_per_1k": 60, "per_tool_call": 500, "per_tool": {"web_fetch": 2000},
             "overhead": 1000},
}


@dataclass
class Api:
    client: TestClient
    node: Node

    def agents(self) -> list[dict[str, Any]]:
        r = self.client.get("/api/v1/agents", headers=AUTH)
        assert r.status_code == 200
        agents: list[dict[str, Any]] = r.json()["agents"]
        return agents


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    settings = settings.model_copy(update={"providers": [
        ProviderConfig(name="local", base_url="http://127.0.0.1:9/v1", model="m"),
        ProviderConfig(name="hosted", base_url="http://127.0.0.1:10/v1", model="m", api_key=SecretStr("k")),
    ]})
    node = Node(settings, approver=ApprovalBroker())
    app = create_app(node, ApprovalBroker(), token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield Api(client, node)


def test_create_list_show_edit_deactivate_reactivate(api: Api) -> None:
    c = api.client
    r = c.post("/api/v1/agents", json=SCOUT, headers=AUTH)
    assert r.status_code == 201, r.text
    made = r.json()
    assert {k: made[k] for k in ("name", "persona", "tier", "skills", "description", "cost", "active")} == {
        **{k: SCOUT[k] for k in ("name", "persona", "tier", "skills", "description", "cost")}, "active": True}
    assert made["public_hex"] == api.node.keyring.agent("scout").public_hex and made["balance"] == 0

    listed = c.get("/api/v1/agents", headers=AUTH).json()
    assert [a["name"] for a in listed["agents"]] == ["colony", "scout"]
    assert listed["tiers"] == ["default", "local", "hosted"]
    assert c.get("/api/v1/agents/scout", headers=AUTH).json() == made

    patched = c.patch("/api/v1/agents/scout", json={"tier": "1", "cost": {"overhead": 5}, "persona": "Ünï 🐜"},
                      headers=AUTH)
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["tier"] == "hosted" and body["persona"] == "Ünï 🐜"
    assert body["cost"] == {**SCOUT["cost"], "overhead": 5} and body["skills"] == ["search"]

    gone = c.delete("/api/v1/agents/scout", headers=AUTH)
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert c.delete("/api/v1/agents/scout", headers=AUTH).status_code == 200  # idempotent
    for r, status in ((c.get("/api/v1/agents/scout", headers=AUTH), 404),
                      (c.patch("/api/v1/agents/scout", json={"persona": "x"}, headers=AUTH), 409)):
        assert r.status_code == status and r.json()["code"] == "deactivated"
        assert "/api/v1/agents/scout/activate" in r.json()["message"]
    assert [a["active"] for a in api.agents()] == [True, False]  # still listed, identity and wallet kept
    back = c.post("/api/v1/agents/scout/activate", headers=AUTH)
    assert back.status_code == 200 and back.json()["active"] is True and back.json()["tier"] == "hosted"


def test_conflicts_and_unknowns_are_4xx_with_a_json_body(api: Api) -> None:
    c = api.client
    assert c.post("/api/v1/agents", json=SCOUT, headers=AUTH).status_code == 201
    again = c.post("/api/v1/agents", json={**SCOUT, "persona": "Another."}, headers=AUTH)
    assert again.status_code == 409 and again.json()["code"] == "conflict" and "already exists" in again.json()["message"]
    assert c.post("/api/v1/agents", json={**SCOUT, "name": "node"}, headers=AUTH).status_code == 409
    tier = c.post("/api/v1/agents", json={**SCOUT, "name": "other", "tier": "gpt-9"}, headers=AUTH)
    assert tier.status_code == 404 and tier.json()["code"] == "unknown_tier"
    assert tier.json()["tiers"] == ["default", "local", "hosted"] and "'gpt-9'" in tier.json()["message"]
    for method, path in (("GET", "/api/v1/agents/ghost"), ("PATCH", "/api/v1/agents/ghost"),
                         ("DELETE", "/api/v1/agents/ghost"), ("POST", "/api/v1/agents/ghost/activate"),
                         ("GET", "/api/v1/agents/node")):
        r = c.request(method, path, json={} if method == "PATCH" else None, headers=AUTH)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, path, r.text)
    assert [a["name"] for a in api.agents()] == ["colony", "scout"]


@pytest.mark.parametrize(("body", "where"), [
    ({**SCOUT, "name": "Scout"}, "body.name"),
    ({**SCOUT, "name": "scout'; DROP TABLE agent_profiles; --"}, "body.name"),
    ({**SCOUT, "name": "../../etc/passwd"}, "body.name"),
    ({**SCOUT, "name": "ѕcout"}, "body.name"),  # a Cyrillic ѕ
    ({**SCOUT, "name": 7}, "body.name"),
    ({**SCOUT, "persona": ""}, "body.persona"),
    ({**SCOUT, "persona": "   "}, "not be blank"),
    ({**SCOUT, "persona": "p" * 8001}, "body.persona"),
    ({**SCOUT, "persona": ["a list"]}, "body.persona"),
    ({**SCOUT, "tier": 1}, "body.tier"),
    ({**SCOUT, "tier": "t" * 65}, "body.tier"),
    ({**SCOUT, "cost": {"overhead": 1.5}}, "body.cost.overhead"),
    ({**SCOUT, "cost": {"overhead": "1000"}}, "body.cost.overhead"),
    ({**SCOUT, "cost": {"overhead": -1}}, "body.cost.overhead"),
    ({**SCOUT, "cost": {"overhead": 2**53}}, "body.cost.overhead"),
    ({**SCOUT, "cost": {"per_tool": {"<script>": 1}}}, "body.cost.per_tool"),
    ({**SCOUT, "cost": "free"}, "body.cost"),
    ({**SCOUT, "skills": "search"}, "body.skills"),
    ({**SCOUT, "skills": ["s" * 65]}, "body.skills.0"),
    ({**SCOUT, "active": False}, "body.active"),
    ({**SCOUT, "public_hex": "00" * 32}, "body.public_hex"),
    ({"persona": "no name"}, "body.name"),
])
def test_bodies_outside_the_schema_are_422(api: Api, body: dict[str, Any], where: str) -> None:
    r = api.client.post("/api/v1/agents", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_request" and where in r.json()["message"], r.text
    assert [a["name"] for a in api.agents()] == ["colony"]


@pytest.mark.parametrize("body", [{"persona": ""}, {"tier": None, "cost": {"per_call": 1}}, {"name": "renamed"},
                                  {"skills": [""]}, {"active": True}, {"persona": "p" * 8001}])
def test_patches_outside_the_schema_are_422_and_change_nothing(api: Api, body: dict[str, Any]) -> None:
    assert api.client.post("/api/v1/agents", json=SCOUT, headers=AUTH).status_code == 201
    before = api.client.get("/api/v1/agents/scout", headers=AUTH).json()
    r = api.client.patch("/api/v1/agents/scout", json=body, headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
    assert api.client.get("/api/v1/agents/scout", headers=AUTH).json() == before


@pytest.mark.parametrize("raw", [b"{", b'{"name": "scout",}', b"\xff\xfe", b"[]", b"null", b'"scout"'])
def test_malformed_json_is_refused_with_a_json_error(api: Api, raw: bytes) -> None:
    r = api.client.post("/api/v1/agents", content=raw, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request" and r.json()["message"], r.text
    assert [a["name"] for a in api.agents()] == ["colony"]


def test_huge_bodies_are_refused_before_they_are_read(api: Api) -> None:
    r = api.client.post("/api/v1/agents", json={**SCOUT, "persona": "p" * 3_000_000}, headers=AUTH)
    assert r.status_code == 413 and r.json()["code"] == "too_large"


def test_every_route_needs_the_token(api: Api) -> None:
    c = api.client
    for method, path in (("GET", "/api/v1/agents"), ("POST", "/api/v1/agents"), ("GET", "/api/v1/agents/colony"),
                         ("PATCH", "/api/v1/agents/colony"), ("DELETE", "/api/v1/agents/colony"),
                         ("POST", "/api/v1/agents/colony/activate")):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = c.request(method, path, json=SCOUT if method == "POST" else None, headers=headers)
            assert r.status_code == 401 and r.json()["code"] == "unauthorized", (method, path)
    assert [a["name"] for a in api.agents()] == ["colony"] and api.agents()[0]["active"] is True


def test_the_openapi_document_describes_the_routes_and_their_errors(api: Api) -> None:
    doc = api.client.get("/openapi.json", headers=AUTH).json()
    ops = doc["paths"]
    assert set(ops["/api/v1/agents"]) == {"get", "post"}
    assert set(ops["/api/v1/agents/{name}"]) == {"get", "patch", "delete"}
    assert {"400", "401", "404", "409", "413", "421", "422"} <= set(ops["/api/v1/agents"]["post"]["responses"])
    assert {"401", "404"} <= set(ops["/api/v1/agents/{name}"]["get"]["responses"])
    assert {"404", "409", "422"} <= set(ops["/api/v1/agents/{name}"]["patch"]["responses"])
    schemas = doc["components"]["schemas"]
    assert schemas["AgentSpec"]["additionalProperties"] is False
    assert schemas["CostModel"]["properties"]["overhead"] == {
        "type": "integer", "minimum": 0, "maximum": 2**53 - 1, "default": 0,
        "description": "Micro-credits per task, whatever it uses.", "title": "Overhead"}
    for op in (ops["/api/v1/agents"]["post"], ops["/api/v1/agents/{name}"]["delete"]):
        assert op["security"] == [{"bearerAuth": []}]


# -- agent cards ------------------------------------------------------------------------------------------


def test_a_configured_agents_card_carries_its_tier_and_cost_model_and_its_state(api: Api) -> None:
    c = api.client
    assert c.post("/api/v1/agents", json=SCOUT, headers=AUTH).status_code == 201
    card = c.get("/api/v1/identity/agents/scout/card").json()  # public
    ext = card["colony"]
    assert card["active"] is True and ext["skills"] == ["search"] and card["description"] == "Finds files."
    assert ext["modelTier"] == "local" and ext["costModel"] == {
        "unit": "micro-credit", "inputPer1k": 20, "outputPer1k": 60, "perToolCall": 500,
        "perTool": {"web_fetch": 2000}, "overhead": 1000}
    assert ext["pubkey"] == api.node.keyring.agent("scout").public_hex
    # The signed card verifies and says the same; supportedTrust stays empty until reputation exists.
    event = c.get("/api/v1/identity/agents/scout/card/event").json()
    assert verify_card_event(event) == card and card["supportedTrust"] == []
    c.delete("/api/v1/agents/scout", headers=AUTH)
    assert c.get("/api/v1/identity/agents/scout/card").json()["active"] is False
    default = c.get("/api/v1/identity/agents/colony/card").json()["colony"]
    assert "modelTier" not in default and "costModel" not in default  # no profile: no price to advertise


# -- the Agents page --------------------------------------------------------------------------------------


def _login(api: Api) -> str:
    assert api.client.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    page = api.client.get("/agents")
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert match
    return match.group(1)


def test_the_agents_page_lists_agents_and_adds_one_from_its_form(api: Api) -> None:
    c = api.client
    assert c.get("/agents", follow_redirects=False).status_code == 303  # login first
    csrf = _login(api)
    page = c.get("/agents")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert 'href="/agents" aria-current="page"' in page.text and 'id="agent-new"' in page.text
    assert re.search(r'<option value="local"', page.text) and "no profile (the node's defaults)" in page.text
    form = {"csrf": csrf, "name": "scout", "persona": "You find things.", "tier": "hosted",
            "skills": "search, summarise", "description": '<img src=x onerror=alert(1)>', "price_in": "20",
            "price_out": "60", "price_tool": "500", "price_for": "web_fetch=2000", "overhead": "1000"}
    r = c.post("/agents", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/agents?created=scout"
    html = c.get(r.headers["location"]).text
    assert 'id="agent-created"' in html
    row = re.search(r'<tr data-agent="scout">.*?</tr>', html, re.S)
    assert row is not None
    cost = "in 20 · out 60 per 1K tokens · 500/call · web_fetch 2000 · +1000/task"
    for shown in ("search", "summarise", "hosted", cost, "active", "Deactivate", "&lt;img src=x onerror=alert(1)&gt;"):
        assert shown in row.group(0), shown
    assert "<img src=x" not in html
    made = c.get("/api/v1/agents/scout", headers=AUTH).json()
    assert made["cost"]["per_tool"] == {"web_fetch": 2000} and made["skills"] == ["search", "summarise"]


@pytest.mark.parametrize(("fields", "status", "says"), [
    ({"name": "Bad Name"}, 422, "name"),
    ({"persona": "   "}, 422, "must not be blank"),
    ({"price_in": "1.5"}, 422, "price in must be a whole number"),
    ({"price_for": "web_fetch"}, 422, "tool=N"),
    ({"tier": "gpt-9"}, 422, "Unknown model tier"),
    ({"name": "colony"}, 409, "already exists"),
])
def test_a_refused_form_is_shown_with_what_was_typed(api: Api, fields: dict[str, str], status: int,
                                                     says: str) -> None:
    csrf = _login(api)
    form = {"csrf": csrf, "name": "scout", "persona": "You find things.", "tier": "default", **fields}
    r = api.client.post("/agents", data=form)
    assert r.status_code == status and 'id="agent-error"' in r.text and says in r.text, r.text[-2000:]
    assert " open>" in r.text and form["persona"].strip() in r.text
    assert [a["name"] for a in api.agents()] == ["colony"] and api.agents()[0]["configured"] is False


def test_the_forms_need_the_csrf_token_and_rows_deactivate_and_reactivate(api: Api) -> None:
    csrf = _login(api)
    c = api.client
    stale = c.post("/agents", data={"csrf": "0" * 64, "name": "scout", "persona": "p"})
    assert stale.status_code == 403 and [a["name"] for a in api.agents()] == ["colony"]
    assert c.post("/agents/colony/deactivate", data={"csrf": "nope"}).status_code == 403
    r = c.post("/agents/colony/deactivate", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and api.agents()[0]["active"] is False
    assert "Reactivate" in c.get("/agents").text
    c.post("/agents/colony/activate", data={"csrf": csrf})
    assert api.agents()[0]["active"] is True
    assert c.post("/agents/ghost/deactivate", data={"csrf": csrf}).status_code == 404
