"""`/api/v1/market` and `colony market` on a real node: post, list with countdowns, show (bids sealed,
then revealed), award, a person's verdict, recheck, reputation, one worker pass — and the refusals:
bodies outside the schema (422), well-formed requests that cannot be done (403, 404, 409), CLI
arguments and exit codes. The auctions driven to their end run on a clock in the past, so the
surfaces (on the real clock) find their deadlines passed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from market_helpers import BIDS_AT_PRIOR, WALLET, World, build_world, finish_task, open_auction, scripted
from typer.testing import CliRunner, Result

from colony.cli import app
from colony.market.bidders import bid_round
from colony.server import create_app
from colony.server.turns import ApprovalBroker
from colony.testing import ScriptedModelServer

TOKEN = "market-api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEW = {"goal": "Write digit_sum(n).", "skills": ["python"], "reserve": 5_000_000, "verification": "approval",
       "commit_s": 600, "reveal_s": 600}


@pytest.fixture
def world() -> Iterator[World]:
    w = build_world()
    w.clock.now = time.time() - 10_000  # auctions opened on this clock are long past their deadlines
    yield w
    w.node.db.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.node, ApprovalBroker(), token=TOKEN, connect_model=False),
                    base_url="http://127.0.0.1") as c:
        yield c


def _past_auction(world: World) -> str:
    """An auction whose bids were committed and revealed in the past; the reveal deadline is long gone."""
    auction = open_auction(world)
    row = world.market.row(auction)
    world.clock.now = row["commit_deadline"]
    bid_round(world.market)
    world.clock.now = row["commit_deadline"] + 1
    bid_round(world.market)
    return auction


def test_the_api_posts_lists_awards_verifies_and_rechecks(client: TestClient, world: World) -> None:
    r = client.post("/api/v1/market/auctions", json=NEW, headers=AUTH)
    assert r.status_code == 201, r.text
    posted = r.json()
    assert posted["phase"] == "commit" and posted["bids"] is None and posted["reserve"] == 5_000_000
    assert 590 <= posted["commit_in_s"] <= 600 and posted["task_state"] == "bidding"
    assert [e["kind"] for e in posted["events"]] == ["announcement"]
    listed = client.get("/api/v1/market/auctions", params={"state": "open"}, headers=AUTH).json()["auctions"]
    assert [a["id"] for a in listed] == [posted["id"]]
    assert client.get(f"/api/v1/market/auctions/{posted['id'][:8]}", headers=AUTH).json()["id"] == posted["id"]
    early = client.post(f"/api/v1/market/auctions/{posted['id']}/award", headers=AUTH)
    assert early.status_code == 409 and early.json()["code"] == "not_ready"

    auction = _past_auction(world)
    r = client.post(f"/api/v1/market/auctions/{auction}/award", headers=AUTH)
    assert r.status_code == 200, r.text
    awarded = r.json()
    assert (awarded["state"], awarded["winner_name"], awarded["price"]) == ("awarded", "ada", BIDS_AT_PRIOR["bob"])
    assert [(b["name"], b["amount"], b["outcome"]) for b in awarded["bids"]] == [
        ("ada", BIDS_AT_PRIOR["ada"], "won"), ("bob", BIDS_AT_PRIOR["bob"], "lost"), ("cy", BIDS_AT_PRIOR["cy"], "lost")]
    not_done = client.post(f"/api/v1/market/auctions/{auction}/verdict", json={"passed": True}, headers=AUTH)
    assert not_done.status_code == 409 and not_done.json()["code"] == "not_ready"
    finish_task(world, auction, "done")
    r = client.post(f"/api/v1/market/auctions/{auction}/verdict", json={"passed": True, "reason": "fine"},
                    headers=AUTH)
    assert r.status_code == 200 and r.json()["state"] == "paid"
    assert r.json()["verification_result"]["decided_by"] == "person:api"
    assert client.get(f"/api/v1/market/auctions/{auction}/recheck", headers=AUTH).json() == {
        "auction": auction, "ok": True, "winner": world.key("ada"), "price": BIDS_AT_PRIOR["bob"], "problems": []}
    table = {row["name"]: row for row in client.get("/api/v1/market/reputation", headers=AUTH).json()["reputation"]}
    assert table["ada"]["reputation"] == pytest.approx(0.6) and table["ada"]["paid"] == BIDS_AT_PRIOR["bob"]
    # paid once; the other bond is still held: ada also bid in the first auction, which is in its commit phase
    assert world.balance("ada") == WALLET + BIDS_AT_PRIOR["bob"] - 100_000


@pytest.mark.parametrize(("body", "status", "code"), [
    ({**NEW, "surprise": 1}, 422, "invalid_request"),
    ({**NEW, "reserve": "5"}, 422, "invalid_request"),
    ({**NEW, "reserve": 5.5}, 422, "invalid_request"),
    ({**NEW, "reserve": 0}, 422, "invalid_request"),
    ({**NEW, "verification": "vibes"}, 422, "invalid_request"),
    ({**NEW, "goal": "   "}, 422, "invalid_request"),
    ({**NEW, "task_id": "task_x"}, 403, "invalid"),
    ({**NEW, "verification": "tests"}, 403, "invalid"),
    ({**NEW, "verification": "review", "validator": "nobody"}, 404, "not_found"),
    ({**NEW, "reserve": 10**12}, 409, "unfunded"),
    ({"task_id": "task_missing", "verification": "approval"}, 404, "not_found"),
])
def test_the_api_refuses_what_it_cannot_do(client: TestClient, body: dict[str, Any], status: int, code: str) -> None:
    r = client.post("/api/v1/market/auctions", json=body, headers=AUTH)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text


def test_the_api_refuses_unknown_ids_wrong_steps_and_no_token(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/market/auctions", headers={}).status_code == 401
    assert client.get("/api/v1/market/auctions/xyz", headers=AUTH).status_code == 422
    missing = client.get("/api/v1/market/auctions/abcdef", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert client.get("/api/v1/market/auctions", params={"state": "won"}, headers=AUTH).status_code == 422
    auction = open_auction(world, verification="review", validator="vera")
    r = client.post(f"/api/v1/market/auctions/{auction}/verdict", json={"passed": True}, headers=AUTH)
    assert r.status_code == 409 and r.json()["code"] == "conflict"  # a validator decides this one, not a person
    r = client.post(f"/api/v1/market/auctions/{auction}/verdict", json={"passed": "yes"}, headers=AUTH)
    assert r.status_code == 422
    document = client.get("/openapi.json", headers=AUTH).json()
    assert {"403", "404", "409"} <= set(document["paths"]["/api/v1/market/auctions"]["post"]["responses"])


def market(*args: str) -> Result:
    return CliRunner().invoke(app, ["market", *args], env={"COLUMNS": "200"}, catch_exceptions=False)


def test_the_cli_posts_shows_awards_decides_and_rechecks(world: World) -> None:
    result = market("--help")
    assert result.exit_code == 0
    for command in ("auctions", "show", "post", "award", "verdict", "recheck", "reputation", "run"):
        assert command in result.output
    assert "Examples:" in market("post", "--help").output

    result = market("post", "Write digit_sum(n).", "--reserve", "5", "--skill", "python", "--verify", "approval",
                    "--commit-s", "600", "--json")
    assert result.exit_code == 0, result.output
    posted = json.loads(result.stdout)
    assert posted["reserve"] == 5_000_000 and posted["phase"] == "commit" and posted["bids"] is None
    listed = json.loads(market("auctions", "--json").stdout)["auctions"]
    assert [a["id"] for a in listed] == [posted["id"]]
    assert "commits close in" in market("auctions").output
    assert market("award", posted["id"][:10]).exit_code == 1  # the reveal deadline is 630 s away

    auction = _past_auction(world)
    result = market("award", auction[:12])
    assert result.exit_code == 0 and "bids" in result.output and "ada" in result.output
    finish_task(world, auction, "done")
    result = market("verdict", auction[:12], "pass", "--reason", "checked by hand")
    assert result.exit_code == 0 and "paid" in result.output
    result = market("recheck", auction[:12])
    assert result.exit_code == 0 and "as awarded" in result.output
    rows = {r["name"]: r for r in json.loads(market("reputation", "--json").stdout)["reputation"]}
    assert rows["ada"]["reputation"] == pytest.approx(0.6)
    shown = json.loads(market("show", auction, "--events", "--json").stdout)
    assert [e["kind"] for e in shown["events"]][-2:] == ["verification", "feedback"]
    report = json.loads(market("run", "--no-work", "--json").stdout)
    assert report["ran"] is None and report["errors"] == []


@pytest.mark.parametrize(("args", "code"), [
    (["show", "zzzzzz"], 2),
    (["show", "abcdef"], 2),
    (["post", "x", "--verify", "nope"], 2),
    (["post", "x", "--reserve", "abc"], 2),
    (["post", "x", "--reserve", "1000000", "--verify", "approval"], 1),  # the poster cannot cover it
    (["post", "x", "--reserve", "5", "--verify", "tests"], 2),  # tests need --tests-file and --entry
    (["verdict", "abcdef", "maybe"], 2),
    (["auctions", "--state", "won"], 2),
])
def test_the_cli_says_what_is_wrong_with_its_exit_code(world: World, args: list[str], code: int) -> None:
    result = market(*args)
    assert result.exit_code == code, result.output
    assert "error:" in result.output


def test_a_serving_node_runs_the_market_worker(model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With COLONY_MARKET_ENABLED the app's lifespan runs the worker: an auction posted over the API is
    bid on, revealed, awarded at its deadline and worked by the winner, on the real clock, untouched."""
    monkeypatch.setenv("COLONY_MARKET_ENABLED", "true")
    monkeypatch.setenv("COLONY_MARKET_INTERVAL_S", "0.1")
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    model.set_script(scripted({"ada": "done: digit_sum written"}))
    world = build_world(validator=False)
    try:
        with TestClient(create_app(world.node, ApprovalBroker(), token=TOKEN, connect_model=False),
                        base_url="http://127.0.0.1") as c:
            auction = c.post("/api/v1/market/auctions", json={**NEW, "commit_s": 1, "reveal_s": 1},
                             headers=AUTH).json()["id"]
            deadline = time.monotonic() + 30
            detail: dict[str, Any] = {}
            while time.monotonic() < deadline:
                detail = c.get(f"/api/v1/market/auctions/{auction}", headers=AUTH).json()
                if detail["task_state"] == "completed":
                    break
                time.sleep(0.1)
            assert (detail["state"], detail["winner_name"], detail["task_state"]) == ("awarded", "ada", "completed")
            assert len([b for b in detail["bids"] if b["amount"] is not None]) == 3
            r = c.post(f"/api/v1/market/auctions/{auction}/verdict", json={"passed": True}, headers=AUTH)
            assert r.json()["state"] == "paid"
    finally:
        world.node.db.close()


def test_the_surfaces_show_an_assignee_account_by_the_agents_name(client: TestClient, world: World) -> None:
    """A task is awarded to an account; the task page, the API's detail and ``colony tasks show`` give
    this node's name for it, and a short npub for an agent of another node sharing the database."""
    from colony.identity import SchnorrKey
    from colony.identity.keys import npub
    from colony.tasks import TaskSpec

    auction = _past_auction(world)
    world.clock.now = world.market.row(auction)["reveal_deadline"] + 1
    assert world.market.award(auction) == "awarded"
    task_id = world.market.row(auction)["task_id"]
    detail = client.get(f"/api/v1/tasks/{task_id}", headers=AUTH).json()
    assert (detail["task"]["assignee"], detail["assignee_name"]) == (world.key("ada"), "ada")
    shown = CliRunner().invoke(app, ["tasks", "show", task_id], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert shown.exit_code == 0 and "assigned to: ada" in shown.output
    client.headers.pop("Authorization", None)
    assert client.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    page = client.get(f"/tasks/{task_id}").text
    assert "<dt>Assigned to</dt>" in page and f'title="{world.key("ada")}">ada</dd>' in page

    elsewhere = SchnorrKey.generate().public_hex  # another node's agent: its name is that node's to give
    store = world.market.tasks
    other = store.post(TaskSpec(goal="won on another node"))
    store.transition(other.id, "bidding", actor="market", reason="auction opened")
    store.transition(other.id, "assigned", actor="market", reason="awarded", fields={"assignee": elsewhere})
    short = npub(elsewhere)[:16] + "…"
    assert client.get(f"/api/v1/tasks/{other.id}", headers=AUTH).json()["assignee_name"] == short
    assert f">{short}</dd>" in client.get(f"/tasks/{other.id}").text
    shown = CliRunner().invoke(app, ["tasks", "show", other.id], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert f"assigned to: {short}" in shown.output
