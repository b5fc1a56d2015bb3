"""The Market page and the colony graph on a real node (the app with its lifespan, TestClient):
open auctions with countdown deadlines, results, reputation, open proposals, the form that posts
a task for auction and its refusals, the login it needs — and the graph as SVG: well-formed XML,
nodes sized by reputation and arrows as wide as the credits paid (both hand-computed), names and
goals escaped.

The world (`market_helpers.build_world`): ada, bob and cy bid; one auction, opened on a clock in
the past, is won by ada at bob's bid (3,428,571 µcredits, the second price), approved and paid —
ada's reputation is then 0.6 (one payment-backed 100 rating), everyone else's the prior 0.5 —
and bob pays cy 1 credit directly. A second auction, opened now, is still taking commitments.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from market_helpers import BIDS_AT_PRIOR, World, build_world, finish_task, open_auction, run_phases

from colony.ledger import MICRO
from colony.market.gov_service import propose, vote
from colony.market.governance import SetToolTier
from colony.market.graph_view import colony_graph
from colony.server import create_app
from colony.server.turns import ApprovalBroker
from colony.server.web.market_page import countdown
from colony.server.web.svg_graph import R_MAX, R_MIN, W_MAX, W_MIN

TOKEN = "market-page-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE_GOAL = '</title><script>alert("goal")</script> & "quotes" <b>'
PRICE = BIDS_AT_PRIOR["bob"]  # 3,428,571: what ada is paid for the first auction
TIP = MICRO  # bob → cy


@dataclass
class Scene:
    world: World
    client: TestClient
    paid: str
    open: str

    def login(self) -> str:
        """Log in with the node token; the page's CSRF token."""
        r = self.client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert r.status_code == 303
        found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', self.client.get("/market").text)
        assert found is not None
        return found.group(1)


@pytest.fixture
def scene() -> Iterator[Scene]:
    world = build_world()
    world.clock.now = time.time() - 10_000
    paid = open_auction(world, goal=HOSTILE_GOAL)
    assert run_phases(world, paid) == "awarded"
    finish_task(world, paid, "def digit_sum(n): ...")
    assert world.market.decide(paid, True, actor="test", reason="looks right") == "paid"
    assert world.market.ledger.pay(world.node.keyring.schnorr_key("bob"), world.key("cy"), TIP,
                                   memo="thanks").status == "applied"
    world.clock.now = time.time()
    current = open_auction(world, goal="Summarise NOTES.md", commit_s=600, reveal_s=300)
    app = create_app(world.node, ApprovalBroker(), token=TOKEN, connect_model=False)
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            yield Scene(world, client, paid, current)
    finally:
        world.node.db.close()


def _row(html: str, attr: str, value: str) -> str:
    found = re.search(rf'<tr {attr}="{re.escape(value)}">.*?</tr>', html, re.S)
    assert found is not None, f"no row {attr}={value}"
    return found.group(0)


def _svg(scene: Scene) -> tuple[ET.Element, str]:
    r = scene.client.get("/market/graph.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.headers["x-content-type-options"] == "nosniff"
    return ET.fromstring(r.content), r.text


# -- the page --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("GET", "/market"), ("GET", "/market/graph.svg"), ("POST", "/market")])
def test_the_page_and_the_picture_need_a_login(scene: Scene, method: str, path: str) -> None:
    r = scene.client.request(method, path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next={path.replace('/', '%2F')}"
    assert scene.world.market.db.scalar("SELECT count(*) FROM market_auctions") == 2  # nothing posted


def test_open_auctions_count_down_to_their_deadlines(scene: Scene) -> None:
    scene.login()
    r = scene.client.get("/market")
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    assert 'href="/market" aria-current="page"' in html and '<script src="/static/market.js?v=' in html
    assert "<script>" not in html  # no inline script: the policy would refuse it
    terms = scene.world.market.row(scene.open)
    row = _row(html, "data-auction", scene.open)
    for deadline, left in ((terms["commit_deadline"], 600), (terms["reveal_deadline"], 900)):
        clock = re.search(rf'<time class="countdown" data-deadline="{deadline}" datetime="([^"]+)"[^>]*>([^<]+)</time>',
                          row)
        assert clock is not None, row
        assert clock.group(1) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deadline))
        assert clock.group(2) in {countdown(left - lag) for lag in range(4)}  # rendered within a few seconds
    assert 'class="badge commit"' in row and "Summarise NOTES.md" in row and ">5</td>" in row
    assert re.search(r'<div id="market" data-now="(\d+)">', html) is not None
    assert _row(html, "data-auction", scene.paid) not in html.split('id="market-results"')[0]  # not open


def test_results_show_winner_price_reserve_verdict_and_escrow(scene: Scene) -> None:
    scene.login()
    html = scene.client.get("/market").text
    row = _row(html, "data-auction", scene.paid)
    for shown in ('class="badge paid"', ">ada</td>", ">3.428571</td>", ">5</td>", 'class="badge passed"',
                  "approval · person:test", "approved by test: looks right", 'class="badge captured"'):
        assert shown in row, shown
    # The goal is a person's text: escaped in the table, never markup.
    assert "&lt;/title&gt;&lt;script&gt;alert(&#34;goal&#34;)&lt;/script&gt; &amp; &#34;quotes&#34; &lt;b&gt;" in row
    assert '<script>alert("goal")' not in html


def test_the_reputation_table_has_reputation_ratings_stake_wins_and_earnings(scene: Scene) -> None:
    scene.login()
    html = scene.client.get("/market").text
    table = html.split('id="market-reputation"')[1].split("</table>")[0]
    cells = {name: re.findall(r'<td class="num"[^>]*>([^<]*)</td>', _row(table, "data-agent", name))
             for name in ("ada", "bob", "cy", "vera")}
    assert cells["ada"] == ["0.600", "1", "2", "1", "3.428571"]
    assert cells["bob"] == ["0.500", "0", "2", "0", "0"]
    assert cells["vera"] == ["0.500", "0", "0", "0", "0"]
    assert table.index('data-agent="ada"') < table.index('data-agent="bob"')  # best first


def test_open_proposals_show_their_tally_and_timelock_countdown(scene: Scene) -> None:
    node = scene.world.node
    proposal = propose(node, SetToolTier(agent="ada", tool="write_file", tier="allow"), by="node")
    vote(node, proposal.id, "ada", "yes")
    vote(node, proposal.id, "bob", "no")
    scene.login()
    row = _row(scene.client.get("/market").text, "data-proposal", proposal.id)
    assert "set ada&#39;s approval tier for write_file to allow" in row and 'class="badge voting"' in row
    # Stake at the snapshot: ada, bob and cy 2 credits each; quorum 20 % by default → 1.2 credits.
    assert "yes 2 · no 2 · abstain 0" in row and "4 of 6 voted" in row and "met" in row, row
    assert f'data-deadline="{proposal.voting_ends}"' in row and f'data-deadline="{proposal.executable_at}"' in row
    assert proposal.executable_at > proposal.voting_ends > time.time()


def test_a_task_is_posted_for_auction_from_the_form(scene: Scene) -> None:
    csrf = scene.login()
    form = {"csrf": csrf, "goal": "Write is_prime(n).", "skills": "python, maths", "budget": "2.5",
            "verification": "review", "validator": "vera", "tests": "ignored: not a tests auction", "poster": "colony"}
    r = scene.client.post("/market", data=form, follow_redirects=False)
    assert r.status_code == 303
    posted = re.fullmatch(r"/market\?posted=([0-9a-f]{64})", r.headers["location"])
    assert posted is not None
    html = scene.client.get(r.headers["location"]).text
    assert 'id="market-posted"' in html and posted.group(1)[:12] in html
    row = _row(html, "data-auction", posted.group(1))
    assert "Write is_prime(n)." in row and ">2.5</td>" in row and ">review</td>" in row
    made = scene.client.get(f"/api/v1/market/auctions/{posted.group(1)}", headers=AUTH).json()
    assert (made["reserve"], made["skills"], made["verification"], made["poster_name"]) == (
        2_500_000, ["maths", "python"], "review", "colony")
    assert made["verify_spec"] == {"validator": "vera"}


@pytest.mark.parametrize(("fields", "status", "says"), [
    ({"budget": ""}, 422, "budget: give the most the poster pays"),
    ({"budget": "lots"}, 422, "is not an amount"),
    ({"budget": "0"}, 422, "more than zero"),
    ({"goal": "   "}, 422, "goal: must not be blank"),
    ({"skills": "python, " + "x" * 65}, 422, "skills.1"),
    ({"verification": "vibes"}, 422, "verification"),
    ({"verification": "review"}, 422, "Verification by review needs validator."),
    ({"verification": "tests", "tests": "def check(c): pass"}, 422, "Verification by tests needs entry_point."),
    ({"verification": "benchmark", "problem": "no/such-problem"}, 422, "no/such-problem"),
    ({"budget": "1000"}, 409, "available"),
    ({"poster": "ghost"}, 404, "not an agent of this node"),
])
def test_a_refused_form_is_shown_inline_with_what_was_typed(scene: Scene, fields: dict[str, str], status: int,
                                                             says: str) -> None:
    csrf = scene.login()
    form = {"csrf": csrf, "goal": "Write is_prime(n) <fast>", "skills": "python", "budget": "2",
            "verification": "approval", **fields}
    r = scene.client.post("/market", data=form)
    assert r.status_code == status, r.text[-1500:]
    error = re.search(r'<p class="error-text" role="alert" id="market-error">(.*?)</p>', r.text, re.S)
    assert error is not None and says in error.group(1), error
    assert '<details class="card" id="market-new" open>' in r.text
    assert "&lt;fast&gt;</textarea>" in r.text or form["goal"].strip() == ""
    assert scene.world.market.db.scalar("SELECT count(*) FROM market_auctions") == 2


def test_a_stale_form_posts_nothing(scene: Scene) -> None:
    scene.login()
    r = scene.client.post("/market", data={"csrf": "0" * 64, "goal": "x", "budget": "1"})
    assert r.status_code == 403 and "stale" in r.text
    assert scene.world.market.db.scalar("SELECT count(*) FROM market_auctions") == 2


# -- the colony graph ----------------------------------------------------------------------------------


def test_the_graph_data_is_the_ledgers_payments_among_agents_and_the_paid_auctions(scene: Scene) -> None:
    world = scene.world
    world.clock.now = time.time() - 5_000
    silent = open_auction(world, goal="Nobody reveals")
    assert run_phases(world, silent, reveal=False) == "void"  # every bond forfeited to the treasury
    graph = colony_graph(world.market)
    names = {n.account: n.name for n in graph.nodes}
    assert [n.name for n in graph.nodes] == ["colony", "ada", "bob", "cy", "vera", "treasury"]
    assert [(n.name, n.reputation, n.ratings, n.active) for n in graph.nodes if n.name in ("ada", "treasury")] == [
        ("ada", pytest.approx(0.6), 1, True), ("treasury", 0.5, 0, False)]
    edges = [(names[e.payer], names[e.payee], e.credits, e.payments, e.auctions, e.goals) for e in graph.edges]
    # Heaviest first; the escrow captured for the paid auction, bob's transfer, the three forfeited
    # bonds (equal: in account order). Stakes and the released bonds moved nothing.
    assert edges[:2] == [("colony", "ada", PRICE, 1, 1, [HOSTILE_GOAL]), ("bob", "cy", TIP, 1, 0, [])]
    assert sorted(edges[2:]) == [("ada", "treasury", 100_000, 1, 0, []), ("bob", "treasury", 100_000, 1, 0, []),
                                 ("cy", "treasury", 100_000, 1, 0, [])]


def test_the_graph_is_well_formed_svg_sized_by_reputation_and_weighted_by_payments(scene: Scene) -> None:
    scene.login()
    root, text = _svg(scene)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>') and root.tag == f"{SVG}svg"
    assert root.get("viewBox") == "0 0 880 520" and root.find(f"{SVG}rect") is not None  # its own background
    nodes = {g.get("data-agent", ""): g for g in root.iter(f"{SVG}g") if g.get("class") == "cg-node"}
    assert sorted(nodes) == ["ada", "bob", "colony", "cy", "treasury", "vera"]
    radius = {name: float(g.find(f"{SVG}circle").get("r", "")) for name, g in nodes.items()}  # type: ignore[union-attr]
    # r = R_MIN + (R_MAX − R_MIN)·reputation = 10 + 24·0.6 = 24.4 for ada; 10 + 24·0.5 = 22 for the rest.
    assert (R_MIN, R_MAX) == (10, 34)
    assert radius == {"ada": 24.4, "bob": 22, "colony": 22, "cy": 22, "treasury": 22, "vera": 22}
    # The treasury (deactivated) is grey; the others are the active colour.
    fills = {name: g.find(f"{SVG}circle").get("fill") for name, g in nodes.items()}  # type: ignore[union-attr]
    assert fills["treasury"] != fills["ada"] == fills["bob"]
    labels = {name: [t.text for t in g.iter(f"{SVG}text")] for name, g in nodes.items()}
    assert labels["ada"] == ["ada", "0.60"] and labels["cy"] == ["cy", "0.50"]

    edges = {(g.get("data-payer"), g.get("data-payee")): g for g in root.iter(f"{SVG}g") if g.get("class") == "cg-edge"}
    assert sorted(edges) == [("bob", "cy"), ("colony", "ada")]  # bonds released, stakes still held: no other move
    width = {pair: float(g.find(f"{SVG}path").get("stroke-width", "")) for pair, g in edges.items()}  # type: ignore[union-attr]
    # w = W_MIN + (W_MAX − W_MIN)·credits/heaviest: the escrow (3,428,571) is the heaviest, 12 wide;
    # bob's 1,000,000 is 1.5 + 10.5 × 1,000,000 / 3,428,571 = 1.5 + 3.0625 = 4.5625, drawn to 2 decimals.
    assert (W_MIN, W_MAX) == (1.5, 12)
    assert width == {("colony", "ada"): 12, ("bob", "cy"): 4.56}
    assert [edges[("colony", "ada")].get("data-credits"), edges[("bob", "cy")].get("data-credits")] == [
        str(PRICE), str(TIP)]
    title = edges[("colony", "ada")].find(f"{SVG}title")
    assert title is not None and title.text == (
        f"colony → ada: 3.428571 credits in 1 payment · 1 paid auction: {HOSTILE_GOAL}")
    assert "<script>" not in text and "&lt;script&gt;" in text  # the goal is text, escaped
    assert [t.text for t in edges[("bob", "cy")].iter(f"{SVG}text")] == ["1"]


def test_the_page_embeds_the_same_graph_inline(scene: Scene) -> None:
    scene.login()
    html = scene.client.get("/market").text
    inline = re.search(r'<figure class="card graph-card" id="colony-graph">\s*(<svg.*?</svg>)', html, re.S)
    assert inline is not None
    root = ET.fromstring(inline.group(1))
    alone, _ = _svg(scene)
    assert root.get("color") is None and alone.get("color") == "#1d1f21"  # inline: the page's text colour
    assert [c.attrib for c in root.iter(f"{SVG}circle")] == [c.attrib for c in alone.iter(f"{SVG}circle")]
    assert 'href="/market/graph.svg"' in html
