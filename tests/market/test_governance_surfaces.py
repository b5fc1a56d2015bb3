"""Stake and governance through their surfaces: ``/api/v1/market/{stakes,proposals}`` on the real app
(lifespan included, so the background sweep runs) and the ``gov_app`` Typer commands mounted on a
local app — happy paths, bodies and arguments outside the schema, and refusals with their codes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from gov_helpers import DAY, node_keyring, staked_agents
from typer.testing import CliRunner, Result

from colony.cli.market_gov import gov_app
from colony.config import Settings
from colony.ledger import MICRO
from colony.market import gov_service as gov
from colony.market import stakes
from colony.market.governance import SetToolTier
from colony.node import Node
from colony.server import create_app
from colony.server.turns import ApprovalBroker

TOKEN = "governance-api-token-0123456789ab"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIER = {"type": "set_tool_tier", "agent": "bob", "tool": "save_note", "tier": "allow"}


@pytest.fixture
def agents(settings: Settings) -> None:
    with node_keyring(settings) as kr:
        staked_agents(kr, {"ada": 0, "bob": 0}, funds=100 * MICRO)


def _past_proposal(settings: Settings, days_ago: float) -> str:
    """A proposal made ``days_ago`` (its vote over and its timelock ended), with ada's yes on it."""
    at = int(time.time() - days_ago * DAY)
    with node_keyring(settings) as kr:
        p = gov.propose(kr, SetToolTier(agent="bob", tool="save_note", tier="allow"), by="ada", now=at)
        gov.vote(kr, p.id, "ada", "yes", now=at + 1)
        return p.id


@pytest.fixture
def client(settings: Settings, agents: None) -> Iterator[TestClient]:
    node = Node(settings, approver=ApprovalBroker())
    app = create_app(node, ApprovalBroker(), token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_stake_propose_vote_veto_over_the_api(client: TestClient) -> None:
    view = _ok(client.post("/api/v1/market/stakes/ada/deposit", json={"amount": 10 * MICRO, "key": "d-1"}, headers=AUTH))
    assert (view["staked"], view["free"], view["balance"]) == (10 * MICRO, 10 * MICRO, 90 * MICRO)
    _ok(client.post("/api/v1/market/stakes/ada/deposit", json={"amount": 10 * MICRO, "key": "d-1"}, headers=AUTH))
    listed = _ok(client.get("/api/v1/market/stakes", headers=AUTH))["stakes"]
    assert {s["agent"]: s["staked"] for s in listed} == {"colony": 0, "ada": 10 * MICRO, "bob": 0}
    assert _ok(client.post("/api/v1/market/stakes/ada/withdraw", json={"amount": 4 * MICRO}, headers=AUTH))[
        "staked"] == 6 * MICRO

    made = _ok(client.post("/api/v1/market/proposals", json={"by": "ada", "action": TIER}, headers=AUTH), 201)
    bob = next(s["account"] for s in listed if s["agent"] == "bob")  # the tier is for bob's account
    assert (made["status"], made["proposer_name"], made["total_weight"], made["action"]) == (
        "voting", "ada", 6 * MICRO, {**TIER, "account": bob})
    voted = _ok(client.post(f"/api/v1/market/proposals/{made['id']}/votes", json={"voter": "ada", "choice": "yes"},
                            headers=AUTH), 201)
    assert (voted["yes"], voted["quorum_met"], voted["votes"][0]["voter_name"]) == (6 * MICRO, True, "ada")
    again = client.post(f"/api/v1/market/proposals/{made['id']}/votes", json={"voter": "ada", "choice": "no"},
                        headers=AUTH)
    assert (again.status_code, again.json()["code"]) == (409, "duplicate")
    assert _ok(client.get(f"/api/v1/market/proposals/{made['id']}", headers=AUTH))["yes"] == 6 * MICRO
    assert [p["id"] for p in _ok(client.get("/api/v1/market/proposals?status=voting", headers=AUTH))["proposals"]] \
        == [made["id"]]
    assert _ok(client.get("/api/v1/market/proposals?status=executed", headers=AUTH))["proposals"] == []

    vetoed = _ok(client.post(f"/api/v1/market/proposals/{made['id']}/veto", json={"reason": "not yet"}, headers=AUTH))
    assert (vetoed["status"], vetoed["veto"]["actor"], vetoed["veto"]["reason"]) == ("vetoed", "api", "not yet")
    closed = client.post(f"/api/v1/market/proposals/{made['id']}/votes", json={"voter": "bob", "choice": "yes"},
                         headers=AUTH)
    assert (closed.status_code, closed.json()["code"]) == (409, "closed")
    assert _ok(client.post("/api/v1/market/executions", headers=AUTH)) == {"executions": []}


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("post", "/api/v1/market/stakes/ada/deposit", {"amount": 0}, 422),
    ("post", "/api/v1/market/stakes/ada/deposit", {"amount": 1.5}, 422),
    ("post", "/api/v1/market/stakes/ada/deposit", {"amount": True}, 422),
    ("post", "/api/v1/market/stakes/ada/deposit", {"amount": "5"}, 422),
    ("post", "/api/v1/market/proposals", {"action": {"agent": "bob", "tool": "save_note", "tier": "allow"}}, 422),
    ("post", "/api/v1/market/stakes/ada/deposit", {"amount": 5, "extra": 1}, 422),
    ("post", "/api/v1/market/stakes/ada/deposit", {"amount": 5, "key": "spaces are not keys"}, 422),
    ("post", "/api/v1/market/stakes/Ada/deposit", {"amount": 5}, 422),
    ("post", "/api/v1/market/proposals", {"action": {"type": "run_prompt", "prompt": "hi"}}, 422),
    ("post", "/api/v1/market/proposals", {"action": {**TIER, "tier": "deny"}}, 422),
    ("post", "/api/v1/market/proposals", {"action": TIER, "by": "node", "snapshot": {}}, 422),
    ("post", "/api/v1/market/proposals/abc/votes", {"voter": "ada", "choice": "yes"}, 422),
    ("post", f"/api/v1/market/proposals/{'a' * 64}/votes", {"voter": "ada", "choice": "maybe"}, 422),
    ("post", f"/api/v1/market/proposals/{'a' * 64}/veto", {"reason": "   "}, 422),
    ("get", "/api/v1/market/proposals?status=pending", None, 422),
    # Well-formed but refused: unknown things 404, out of bounds or not allowed 403, not now 409.
    ("post", "/api/v1/market/stakes/ghost/deposit", {"amount": 5}, 404),
    ("post", "/api/v1/market/stakes/ada/deposit", {"amount": 101 * MICRO}, 409),
    ("post", "/api/v1/market/stakes/ada/withdraw", {"amount": 1}, 409),
    ("post", "/api/v1/market/proposals", {"action": {**TIER, "agent": "ghost"}}, 404),
    ("post", "/api/v1/market/proposals", {"by": "bob", "action": TIER}, 403),
    ("post", "/api/v1/market/proposals", {"action": {"type": "set_market_param", "name": "stake_bp", "value": 10_001}}, 403),
    ("post", "/api/v1/market/proposals", {"action": {"type": "set_price", "route": "/c/x/*", "pay_to": "ada"}}, 403),
    ("post", f"/api/v1/market/proposals/{'a' * 64}/votes", {"voter": "ada", "choice": "yes"}, 404),
    ("get", f"/api/v1/market/proposals/{'a' * 64}", None, 404),
])
def test_malformed_or_refused_requests(client: TestClient, method: str, path: str, body: Any, status: int) -> None:
    r = client.request(method, path, json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert set(r.json()) >= {"code", "message"}


def test_the_routes_need_the_token_and_declare_their_errors(client: TestClient) -> None:
    assert client.get("/api/v1/market/stakes").status_code == 401
    doc = _ok(client.get("/openapi.json", headers=AUTH))
    create = doc["paths"]["/api/v1/market/proposals"]["post"]
    assert {"201", "403", "404", "422"} <= set(create["responses"])
    assert {"201", "403", "404", "409"} <= set(doc["paths"]["/api/v1/market/proposals/{proposal_id}/votes"]["post"][
        "responses"])
    assert {"404", "409"} <= set(doc["paths"]["/api/v1/market/stakes/{name}/deposit"]["post"]["responses"])


def test_a_serving_node_executes_due_proposals_by_itself(settings: Settings, agents: None) -> None:
    with node_keyring(settings) as kr:
        stakes.deposit(kr, "ada", 5 * MICRO)
    proposal = _past_proposal(settings, days_ago=2.5)  # its timelock ended half a day ago
    node = Node(settings, approver=ApprovalBroker())
    app = create_app(node, ApprovalBroker(), token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        deadline = time.monotonic() + 20
        while (view := _ok(c.get(f"/api/v1/market/proposals/{proposal}", headers=AUTH)))["status"] != "executed":
            assert time.monotonic() < deadline, view
            time.sleep(0.05)
        assert view["execution"]["outcome"] == "applied"
    with node_keyring(settings) as kr:
        assert gov.agent_tool_tier(kr.db, kr.db, "bob", "save_note") == "allow"
        log = gov._gov_store.list_log(kr.db, proposal_id=proposal)
        assert [r["action"] for r in log][-1] == "executed" and log[-1]["actor"] == "node"


# -- the CLI -----------------------------------------------------------------------------------------

cli = typer.Typer()
cli.add_typer(gov_app, name="market")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["market", *args], env={"COLUMNS": "200"}, catch_exceptions=False)


def as_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_cli_stakes_proposes_votes_vetoes_and_executes(settings: Settings, agents: None) -> None:
    result = run("stake", "deposit", "ada", "10")
    assert result.exit_code == 0 and "staked 10" in result.stdout and "10 credits staked" in result.stdout
    assert as_json("stake", "withdraw", "ada", "2500000u")["staked"] == 7_500_000
    assert {v["agent"]: v["staked"] for v in as_json("stake", "show")} == {"colony": 0, "ada": 7_500_000, "bob": 0}

    made = as_json("propose", "tool-tier", "bob", "save_note", "allow", "--by", "ada")
    assert (made["status"], made["summary"]) == ("voting", "set bob's approval tier for save_note to allow")
    voted = run("vote", made["id"][:8], "yes", "--as", "ada")
    assert voted.exit_code == 0 and "ada voted yes" in voted.stdout
    shown = run("proposals", made["id"][:10])
    assert shown.exit_code == 0 and "yes 7.5" in shown.stdout and "voting" in shown.stdout
    assert [p["id"] for p in as_json("proposals", "--status", "voting")] == [made["id"]]
    price = as_json("propose", "price", "POST /x402/agents/bob/prompt", "--credits", "0.3", "--pay-to", "bob")
    assert price["action"] == {"type": "set_price", "route": "POST /x402/agents/bob/prompt", "credits": 300_000,
                               "evm_amount": None, "pay_to": "bob"}
    vetoed = run("veto", price["id"], "--reason", "too cheap")
    assert vetoed.exit_code == 0 and "vetoed" in vetoed.stdout and "too cheap" in vetoed.stdout
    assert run("execute").stdout.strip() == "nothing due"

    due = _past_proposal(settings, days_ago=3)
    [done] = as_json("execute")
    assert (done["proposal_id"], done["outcome"]) == (due, "applied")
    assert as_json("execute") == []


@pytest.mark.parametrize(("args", "code", "says"), [
    (("stake", "deposit", "ada", "abc"), 2, "not an amount"),
    (("stake", "deposit", "ghost", "1"), 2, "No agent named 'ghost'"),
    (("stake", "deposit", "ada", "1000"), 1, "staking 1000 needs more"),
    (("stake", "withdraw", "ada", "1"), 1, "cannot withdraw"),
    (("propose", "tool-tier", "bob", "save_note", "deny"), 2, "invalid proposal"),
    (("propose", "param", "stake_bp", "10001"), 2, "within 0..10000"),
    (("propose", "param", "nonsense", "1"), 2, "invalid proposal"),
    (("propose", "expel", "bob", "--by", "bob"), 1, "proposing needs"),
    (("vote", "abcdef", "maybe", "--as", "ada"), 2, "not a vote"),
    (("vote", "abcdef", "yes", "--as", "ada"), 2, "No proposal starts with abcdef"),
    (("proposals", "xyz"), 2, "not a proposal id"),
    (("proposals", "--status", "pending"), 2, "not a state"),
])
def test_the_cli_refuses_with_exit_codes(agents: None, args: tuple[str, ...], code: int, says: str) -> None:
    result = run(*args)
    assert result.exit_code == code, result.output
    assert says in result.output
