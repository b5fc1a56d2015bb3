"""The Colony page, its live fragment, its pictures and ``GET /api/v1/peers/graph`` on a real node (the
app with its lifespan, TestClient; the federation loop off so nothing is sent anywhere).

The colony (`seed_colony`): node A (the one serving, "home") holds agents colony and ada; member B
is a real node whose signed announcement carries a hostile name and URL and an agent card (cyd's)
with a hostile name, re-signed by B's and cyd's own keys so it verifies; B is queen of term 3 and
A follows her. Payments, all real signed ledger entries:

- on A's ledger: colony → ada 2 credits;
- on B's ledger: bob → cyd 3 credits, bob → ada (A's agent) 1.5 credits, bob → a key nobody announced
  0.25 credits;

and A holds a verified replica of B's ledger (`replication.sync` from B's store), so the graph shows
B's payments too, the cross-node one with its payee coloured as A's. Member C is a real node last
heard from long ago (dead), with no payments. A has three stored Psi readings.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from colony.config import Settings
from colony.federation import _store, membership, roles
from colony.federation import colony_graph as graph_module
from colony.federation.announce import Announcer
from colony.federation.colony_graph import ColonyGraphOut, clean_name, colony_graph, short_npub
from colony.federation.colony_state import save_series
from colony.federation.messages import ANNOUNCE_KIND, Announcement
from colony.federation.psi import PsiReading, PsiSeries
from colony.federation.replica_sources import StoreSource
from colony.federation.replication import sync
from colony.identity import SchnorrKey
from colony.identity.cards import CARD_KIND
from colony.identity.events import Event
from colony.ledger import MICRO, Ledger, open_ledger_store
from colony.market.profiles import AgentSpec, create_agent
from colony.node import Node
from colony.server import create_app
from colony.server.turns import ApprovalBroker
from colony.server.web.colony_svg import NODE_COLOURS, UNKNOWN_COLOUR, render_psi_chart
from colony.store import open_database

TOKEN = "colony-page-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SVG = "{http://www.w3.org/2000/svg}"
#: B's announced name and URL, and cyd's card name: what a hostile peer may put there.
HOSTILE_NAME = '<script>alert("node")</script> \'q\' "dq" & 𒀱𒀱𒀱'
HOSTILE_URL = 'http://127.0.0.1:9/"><script>alert(1)</script>'
HOSTILE_AGENT = '"><img src=x onerror=alert(2)>' + "ж" * 80
PSI_VALUES = (0.2, 0.35, 0.5)


@dataclass
class Colony:
    a_pub: str
    b_pub: str
    c_pub: str
    keys: dict[str, str]  # agent name -> account
    stranger: str


def _node(home: Path) -> Node:
    node = Node(Settings(home=home))
    node.keyring.ensure(announce=False)
    return node


def _agent(node: Node, name: str) -> str:
    create_agent(node.keyring, AgentSpec(name=name, persona=f"You are {name}."))
    return node.keyring.agent(name).public_hex


def _ledger(node: Node) -> Ledger:
    return Ledger(open_ledger_store(node.db, node.settings), node.keyring.node().schnorr_key)


def _hostile_announcement(node: Node, url: str, *, card_of: str | None) -> Event:
    """The node's real announcement with its name and URL (and ``card_of``'s card name) made hostile,
    every changed event signed again by its own key, so it verifies like any member's."""
    real = Announcer(node, url).build()
    content = Announcement.model_validate_json(real.content)
    cards = []
    for card in content.agents:
        body = json.loads(card.content)
        if card_of is not None and body["name"] == card_of:
            body["name"] = HOSTILE_AGENT
            card = node.keyring.agent(card_of).sign(CARD_KIND, json.dumps(body, separators=(",", ":")), card.tags)
        cards.append(card)
    changed = content.model_copy(update={"name": HOSTILE_NAME, "url": url, "agents": cards})
    return node.keyring.node().sign(ANNOUNCE_KIND, json.dumps(changed.model_dump(mode="json"), ensure_ascii=False),
                                    real.tags)


def seed_colony(root: Path) -> Colony:
    """The colony of the module docstring; A is the node of ``Settings()`` (COLONY_HOME). Every node's
    database is closed on return: A's server opens its own."""
    a, b, c = Node(Settings()), _node(root / "bee"), _node(root / "cee")
    a.keyring.ensure(announce=False)
    try:
        keys = {"colony": a.keyring.agent("colony").public_hex, "ada": _agent(a, "ada"),
                "bob": _agent(b, "bob"), "cyd": _agent(b, "cyd")}
        stranger = SchnorrKey.generate().public_hex
        home, bee = _ledger(a), _ledger(b)
        home.mint(keys["colony"], 10 * MICRO, "test funding", actor="test")
        assert home.pay(a.keyring.schnorr_key("colony"), keys["ada"], 2 * MICRO).status == "applied"
        bee.mint(keys["bob"], 10 * MICRO, "test funding", actor="test")
        bob = b.keyring.schnorr_key("bob")
        for payee, amount in ((keys["cyd"], 3 * MICRO), (keys["ada"], 3 * MICRO // 2), (stranger, MICRO // 4)):
            assert bee.pay(bob, payee, amount).status == "applied"

        assert roles.claim(b, 3) is not None  # B is queen of term 3
        b_event = _hostile_announcement(b, HOSTILE_URL, card_of="cyd")
        membership.trust(a.db, b_event, HOSTILE_URL, "operator")
        assert roles.adopt_from(a.db, Announcement.model_validate_json(b_event.content).role)
        c_event = Announcer(c, "http://127.0.0.1:10").build()
        membership.trust(a.db, c_event, "http://127.0.0.1:10", "operator")
        _store.store_announcement(a.db, c_event.pubkey, c_event, "cee", time.time() - 10_000)  # long silent

        result = sync(a.db, b_event.pubkey, StoreSource(open_ledger_store(b.db, b.settings)))
        assert result.problems == [] and result.in_sync

        series = PsiSeries(min_interval_s=30)
        start = time.time() - 600
        for i, value in enumerate(PSI_VALUES):
            assert series.record(start + 120 * i, PsiReading(intelligence=value, sync=1.0, diversity=0.5,
                                                             velocity=0.5, psi=value, nodes=2))
        save_series(a, series)
        return Colony(a_pub=a.keyring.node().public_hex, b_pub=b_event.pubkey, c_pub=c_event.pubkey, keys=keys, stranger=stranger)
    finally:
        for node in (a, b, c):
            node.db.close()


@pytest.fixture
def colony(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Colony, TestClient]]:
    monkeypatch.setenv("COLONY_FEDERATION_ENABLED", "false")
    monkeypatch.setenv("COLONY_FEDERATION_HEARTBEAT_S", "600")  # B stays live through the test
    world = seed_colony(tmp_path)
    node = Node(Settings())
    app = create_app(node, ApprovalBroker(), token=TOKEN, connect_model=False)
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            yield world, client
    finally:
        node.db.close()


def _login(client: TestClient) -> None:
    r = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303


def _svg(html: str, cls: str) -> ET.Element:
    found = re.search(rf'<svg [^>]*class="{cls}".*?</svg>', html, re.S)
    assert found is not None, f"no svg.{cls}"
    return ET.fromstring(found.group(0))  # well-formed XML whatever the names


def _groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


# -- the page ------------------------------------------------------------------------------------------
def test_the_page_needs_a_login_and_is_in_the_navigation(colony: tuple[Colony, TestClient]) -> None:
    _, client = colony
    for path in ("/colony", "/colony/live", "/colony/graph.svg"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert client.get("/colony/live", headers={"HX-Request": "true"}, follow_redirects=False).headers[
        "HX-Redirect"] == "/login?next=%2Fcolony%2Flive"
    _login(client)
    page = client.get("/colony")
    assert page.status_code == 200
    assert '<a href="/colony" aria-current="page">Colony</a>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<a href="/colony">Colony</a>' in client.get("/market").text


def test_nodes_table_shows_members_liveness_roles_terms_syncs_and_agents(colony: tuple[Colony, TestClient]) -> None:
    world, client = colony
    _login(client)
    html = client.get("/colony").text
    rows = dict(re.findall(r'<tr data-node="([0-9a-f]{64})"[^>]*>(.*?)</tr>', html, re.S))
    assert set(rows) == {world.a_pub, world.b_pub, world.c_pub}
    me, bee, cee = rows[world.a_pub], rows[world.b_pub], rows[world.c_pub]
    assert "this node" in me and "colony, ada" in me
    assert '<span class="badge ok">live</span>' in bee and '<span class="badge bad">dead</span>' in cee
    assert re.search(r'data-label="role"><span class="badge channel">queen</span>', bee)
    assert re.search(r'data-label="role"><span class="badge ">member</span>', cee)
    assert re.search(r'data-label="term">3</td>', bee)
    assert "in sync" in bee and "entries" in bee
    assert "never" in cee  # C's ledger was never synced
    assert re.search(r"bob, ", bee)  # B's agents from its cards
    assert "queen" in html and "term 3" in html


def test_peer_supplied_strings_are_escaped_everywhere(colony: tuple[Colony, TestClient]) -> None:
    _, client = colony
    _login(client)
    for path in ("/colony", "/colony/live"):
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;node&#34;)&lt;/script&gt;" in html  # the name, shown as text
        assert 'href="http://127.0.0.1:9/&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
        assert "𒀱𒀱𒀱" in html
    svg = client.get("/colony/graph.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.text.split("\n", 1)[1])
    names = {g.get("data-agent") for g in _groups(root, "cg-node")}
    assert clean_name(HOSTILE_AGENT) in names and len(clean_name(HOSTILE_AGENT)) == 64
    assert "<img" not in svg.text and "<script" not in svg.text


def test_health_shows_what_each_member_announced(colony: tuple[Colony, TestClient]) -> None:
    world, client = colony
    _login(client)
    html = client.get("/colony").text
    cards = dict(re.findall(r'<div class="card" data-node="([0-9a-f]{64})">(.*?)</div>\n', html, re.S))
    bee = cards[world.b_pub]
    assert '<span class="badge ok">ok</span>' in bee
    assert re.search(r"<dt>Open tasks</dt><dd>0</dd>", bee)
    assert re.search(r"<dt>Queen</dt><dd><code title=\"" + world.b_pub + r"\">[0-9a-f]{12}…</code> · term 3", bee)
    assert "(as last announced)" in cards[world.c_pub]  # dead: its health is history


def test_psi_chart_draws_the_stored_series_and_the_factors_now(colony: tuple[Colony, TestClient]) -> None:
    _, client = colony
    _login(client)
    html = client.get("/colony").text
    chart = _svg(html, "psi-chart")
    assert chart.get("data-points") == str(len(PSI_VALUES))
    [line] = [p for p in chart.iter(f"{SVG}polyline")]
    ys = [float(pt.split(",")[1]) for pt in (line.get("points") or "").split()]
    # Psi rises, so the line rises (SVG y grows downward); 0.5 sits half-way between the 0 and 1 lines.
    assert ys == sorted(ys, reverse=True) and ys[-1] == pytest.approx(12 + (180 - 30 - 12) * 0.5)
    for factor in ("psi", "intelligence", "sync", "diversity", "velocity"):
        assert re.search(rf'<dd data-factor="{factor}">(<strong>)?\d\.\d{{3}}', html), factor


def test_the_graph_draws_payments_from_every_ledger_coloured_by_node(colony: tuple[Colony, TestClient]) -> None:
    world, client = colony
    _login(client)
    root = _svg(client.get("/colony").text, "colony-graph colony-payments")
    nodes = {g.get("data-account"): g for g in _groups(root, "cg-node")}
    fill = {acct: g.find(f"{SVG}circle").get("fill") for acct, g in nodes.items()}  # type: ignore[union-attr]
    k = world.keys
    assert fill[k["colony"]] == fill[k["ada"]] == NODE_COLOURS[0]  # this node's agents
    assert fill[k["bob"]] == fill[k["cyd"]] == NODE_COLOURS[1]  # B's, named from its cards
    assert fill[world.stranger] == UNKNOWN_COLOUR
    assert nodes[world.stranger].get("data-agent") == short_npub(world.stranger)
    edges = {(e.get("data-payer"), e.get("data-payee")): int(e.get("data-credits") or 0)
             for e in _groups(root, "cg-edge")}
    cyd = clean_name(HOSTILE_AGENT)
    assert edges == {("colony", "ada"): 2 * MICRO, ("bob", cyd): 3 * MICRO, ("bob", "ada"): 3 * MICRO // 2,
                     ("bob", short_npub(world.stranger)): MICRO // 4}
    # The busiest agent (bob moved 4.75 credits) is drawn largest.
    radius = {acct: float(g.find(f"{SVG}circle").get("r") or 0) for acct, g in nodes.items()}  # type: ignore[union-attr]
    assert max(radius, key=lambda a: radius[a]) == k["bob"]


def test_the_fragment_polls_itself(colony: tuple[Colony, TestClient]) -> None:
    _, client = colony
    _login(client)
    r = client.get("/colony/live", headers={"HX-Request": "true"})
    assert r.status_code == 200 and not r.text.lstrip().startswith("<!doctype")
    head = re.match(r'\s*(?:\{#.*?#\}\s*)?<div id="colony-live"([^>]*)>', r.text, re.S)
    assert head is not None
    assert 'hx-get="/colony/live"' in head.group(1) and 'hx-trigger="every 10s"' in head.group(1)
    assert 'hx-swap="outerHTML"' in head.group(1)
    assert 'class="colony-graph colony-payments"' in r.text and 'class="psi-chart"' in r.text


# -- the JSON twin --------------------------------------------------------------------------------------
def test_the_api_returns_the_same_graph_bounded(colony: tuple[Colony, TestClient]) -> None:
    world, client = colony
    assert client.get("/api/v1/peers/graph").status_code == 401
    r = client.get("/api/v1/peers/graph", headers=AUTH)
    assert r.status_code == 200
    graph = ColonyGraphOut.model_validate(r.json())
    assert [n.pubkey for n in graph.nodes] == [world.a_pub, world.b_pub, world.c_pub]
    assert [n.me for n in graph.nodes] == [True, False, False]
    assert graph.nodes[1].name == HOSTILE_NAME and graph.nodes[1].complete
    assert [(e.credits, e.ledgers) for e in graph.edges] == [
        (3 * MICRO, [world.b_pub]), (2 * MICRO, [graph.nodes[0].pubkey]), (3 * MICRO // 2, [world.b_pub]),
        (MICRO // 4, [world.b_pub])]
    by = {a.account: a for a in graph.agents}
    assert by[world.keys["bob"]].paid == 3 * MICRO + 3 * MICRO // 2 + MICRO // 4
    assert by[world.keys["ada"]].received == 2 * MICRO + 3 * MICRO // 2
    assert by[world.keys["ada"]].node == graph.nodes[0].pubkey  # paid on B's ledger, still A's agent
    assert by[world.stranger].node is None and not by[world.stranger].known
    assert graph.dropped_edges == 0 and not graph.truncated

    small = ColonyGraphOut.model_validate(client.get("/api/v1/peers/graph?max_agents=2&max_edges=5",
                                                     headers=AUTH).json())
    assert len(small.agents) == 2 and [(e.credits) for e in small.edges] == [3 * MICRO]  # only bob → cyd fits
    assert small.dropped_edges == 3 and small.dropped_agents == len(graph.agents) - 2 + graph.dropped_agents
    for bad in ("max_agents=0", "max_edges=2001", "max_agents=501"):
        r = client.get(f"/api/v1/peers/graph?{bad}", headers=AUTH)
        assert r.status_code == 422 and "code" in r.json()


def test_a_node_alone_says_how_to_start_a_colony(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_FEDERATION_ENABLED", "false")
    node = Node(Settings())
    app = create_app(node, ApprovalBroker(), token=TOKEN, connect_model=False)
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            _login(client)
            html = client.get("/colony").text
            assert 'id="colony-empty"' in html
            assert "<code>colony spawn NAME</code>" in html and "<code>colony peers add URL</code>" in html
            assert "No readings yet" in html and "A colony of one has no Psi" in html
            graph = ColonyGraphOut.model_validate(client.get("/api/v1/peers/graph", headers=AUTH).json())
            assert len(graph.nodes) == 1 and graph.edges == []
    finally:
        node.db.close()


# -- bounds and drawing without a node -----------------------------------------------------------------
def test_clean_name_keeps_printable_text_and_cuts_long_names() -> None:
    assert clean_name("a\x00b\nc\u200b  d\u202e") == "a b c d"  # controls, zero-width and bidi marks go
    assert clean_name("x" * 100) == "x" * 63 + "…"
    assert clean_name("\x07\x1b") == ""


def test_psi_chart_with_no_reading_one_and_many() -> None:
    empty = ET.fromstring(render_psi_chart([]))
    assert empty.get("data-points") == "0" and any("No readings yet" in (t.text or "") for t in empty.iter(f"{SVG}text"))
    one = ET.fromstring(render_psi_chart([{"at": 1_800_000_000.0, "psi": 0.4}]))
    assert one.get("data-points") == "1" and one.find(f"{SVG}polyline") is None and one.find(f"{SVG}circle") is not None
    many = [{"at": 1_800_000_000.0 + 30 * i, "psi": (i % 10) / 10} for i in range(1440)]
    drawn = ET.fromstring(render_psi_chart(many))
    assert drawn.get("data-points") == "240"
    line = drawn.find(f"{SVG}polyline")
    assert line is not None and len((line.get("points") or "").split()) == 240


def test_the_graph_caps_agents_and_edges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More payments than the caps: the heaviest edges whose agents fit are kept, the rest counted; a
    ledger longer than the entries read per ledger is read in pages up to that bound and said to be cut."""
    node = _node(tmp_path / "big")
    try:
        ledger = _ledger(node)
        payers = [_agent(node, f"p{i}") for i in range(6)]
        for i, payer in enumerate(payers):
            ledger.mint(payer, 10 * MICRO, "funding", actor="test")
            for j, payee in enumerate(payers):
                if i != j:
                    assert ledger.pay(node.keyring.schnorr_key(f"p{i}"), payee, (i + 1) * 1000 + j).status == "applied"
        full = colony_graph(node, max_agents=500, max_edges=2000)
        assert len(full.edges) == 30 and full.dropped_edges == 0
        assert [e.credits for e in full.edges] == sorted((e.credits for e in full.edges), reverse=True)
        capped = colony_graph(node, max_agents=3, max_edges=4)
        assert len(capped.agents) == 3 and len(capped.edges) <= 4
        kept = {a.account for a in capped.agents}
        assert all(e.payer in kept and e.payee in kept for e in capped.edges)
        assert capped.edges[0] == full.edges[0]  # the heaviest always fits
        assert capped.dropped_edges == 30 - len(capped.edges)

        monkeypatch.setattr(graph_module, "PAGE", 7)
        monkeypatch.setattr(graph_module, "ENTRIES_PER_LEDGER", 20)
        cut = colony_graph(node, max_agents=500, max_edges=2000)
        assert cut.truncated and not cut.nodes[0].complete and cut.nodes[0].entries_read == 20
        assert sum(e.payments for e in cut.edges) < 30
        monkeypatch.setattr(graph_module, "ENTRIES_PER_LEDGER", 10_000)
        whole = colony_graph(node, max_agents=500, max_edges=2000)  # paged by 7, read to the end
        assert not whole.truncated and whole.nodes[0].complete and whole.edges == full.edges
    finally:
        node.db.close()


def test_a_member_introduced_by_another_names_its_introducer(colony: tuple[Colony, TestClient]) -> None:
    """C came through B's introduction: C's row names B (escaped: B's name is hostile), not B's key."""
    world, client = colony
    db = open_database(Settings().home / "colony.db")
    try:
        db.execute("UPDATE federation_nodes SET added_by = 'introduced', introduced_by = ? WHERE pubkey = ?",
                   (world.b_pub, world.c_pub))
    finally:
        db.close()
    _login(client)
    names = {p["pubkey"]: p["name"] for p in client.get("/api/v1/peers", headers=AUTH).json()["peers"]}
    html = client.get("/colony").text
    rows = dict(re.findall(r'<tr data-node="([0-9a-f]{64})"[^>]*>(.*?)</tr>', html, re.S))
    shown = f'introduced by <span class="introduced-by" title="{world.b_pub}">{escape(names[world.b_pub])}</span>'
    assert shown in rows[world.c_pub]
    assert "introduced by" not in rows[world.b_pub]
