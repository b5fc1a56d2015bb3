"""The web UI's pages over HTTP: login and logout, redirects, rendering, pagination and escaping.

Runs the real app (`create_app`, lifespan included) through Starlette's httpx-based TestClient;
the live chat in a real browser is in tests/test_browser.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from colony.config import Settings
from colony.llm.messages import AssistantMessage, ToolCall, ToolResultMessage, UserMessage
from colony.memory import MemoryIn
from colony.node import Node
from colony.server import create_app
from colony.server.auth import COOKIE_NAME
from colony.server.turns import ApprovalBroker
from colony.server.web._views import build_transcript
from colony.store.audit import ToolCallRecord
from colony.store.sessions import TurnEnd

TOKEN = "test-token-0123456789abcdef"
BASE = "http://127.0.0.1"
PAGES = ["/", "/sessions", "/audit", "/memory", "/health"]
HOSTILE_TITLE = '<script>alert("title")</script>'
HOSTILE_ARG = '"><img src=x onerror=alert(1)>'
STATIC = Path(__file__).resolve().parents[1] / "src/colony/server/web/static"


@dataclass
class Web:
    client: TestClient
    node: Node

    def login(self) -> None:
        r = self.client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert r.status_code == 303

    def csrf(self) -> str:
        page = self.client.get("/").text
        match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
        assert match, "the page carries no csrf meta tag"
        return match.group(1)


@pytest.fixture
def web(settings: Settings) -> Iterator[Web]:
    broker = ApprovalBroker()
    node = Node(settings, approver=broker)
    app = create_app(node, broker, token=TOKEN, connect_model=False)
    with TestClient(app, base_url=BASE) as client:
        yield Web(client, node)


def seed_session(node: Node, title: str = "Copy the notes", arg: str = "out.txt") -> str:
    """A finished turn with one approved tool call, written the way the agent loop writes it."""
    records = node.records
    sid = records.create_session(title=title, surface="web")
    tid = records.start_turn(sid, title, None)
    records.add_message(sid, tid, UserMessage(content=title))
    call = ToolCall(id="call_1", name="write_file", arguments={"path": arg, "content": "hi", "api_key": "sk-secret"})
    records.add_message(sid, tid, AssistantMessage(content="", tool_calls=[call]))
    records.add_message(sid, tid, ToolResultMessage(tool_call_id="call_1", name="write_file", content=f"wrote {arg}"))
    records.record_tool_call(ToolCallRecord(
        session_id=sid, turn_id=tid, call_id="call_1", tool="write_file",
        arguments={"path": arg, "content": "hi", "api_key": "[REDACTED]"}, outcome="ok", latency_ms=4.2,
        approval="approved",
    ))
    records.add_message(sid, tid, AssistantMessage(content=f"Done: {arg}"))
    records.finish_turn(tid, TurnEnd(status="completed", final_text=f"Done: {arg}", tool_calls=1, model_requests=2,
                                     prompt_tokens=30, completion_tokens=12))
    return sid


# -- authentication ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/sessions/ses_x", "/?session=ses_x", "/audit?tool=run_command"])
def test_pages_redirect_to_login_without_the_cookie(web: Web, path: str) -> None:
    r = web.client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    login = web.client.get(r.headers["location"])
    assert login.status_code == 200 and 'name="token"' in login.text and "colony token" in login.text


def test_a_partial_request_without_the_cookie_asks_htmx_to_navigate_to_login(web: Web) -> None:
    r = web.client.get("/audit?before_id=5", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 200 and r.text == ""
    assert r.headers["hx-redirect"] == "/login?next=%2Faudit%3Fbefore_id%3D5"


def test_login_sets_an_httponly_strict_cookie_holding_a_random_session_id(web: Web) -> None:
    r = web.client.post("/login", data={"token": f"  {TOKEN}\n", "next": "/audit"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    cookie = r.headers["set-cookie"]
    value = cookie.split(";")[0].removeprefix(f"{COOKIE_NAME}=")
    assert len(value) >= 40 and TOKEN not in cookie
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert web.client.get("/audit", follow_redirects=False).status_code == 200
    # The database holds a keyed hash of the id, never the cookie itself.
    stored = [row["id_hash"] for row in web.node.db.query("SELECT id_hash FROM web_sessions")]
    assert len(stored) == 1 and value not in stored[0]
    # Already logged in: the form sends you on.
    assert web.client.get("/login?next=/health", follow_redirects=False).headers["location"] == "/health"
    # A second login is a new random id, not the same value again (it used to be HMAC(token)).
    again = web.client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert again.headers["set-cookie"].split(";")[0] != cookie.split(";")[0]
    assert web.node.db.scalar("SELECT COUNT(*) FROM web_sessions") == 1  # it replaced the first


@pytest.mark.parametrize("token", ["wrong", "", TOKEN[:-1], TOKEN + "x"])
def test_a_wrong_token_is_refused_with_a_message(web: Web, token: str) -> None:
    r = web.client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 401
    assert "set-cookie" not in r.headers
    assert "not this node&#39;s token" in r.text and "colony token" in r.text
    assert web.client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "javascript:alert(1)"]
)
def test_login_never_redirects_off_site(web: Web, target: str) -> None:
    r = web.client.post("/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
    assert r.headers["location"] == "/"


def test_a_forged_cookie_is_not_a_login(web: Web) -> None:
    web.client.cookies.set(COOKIE_NAME, TOKEN)  # the raw token is not the cookie value
    assert web.client.get("/", follow_redirects=False).status_code == 303


def test_logout_clears_the_cookie(web: Web) -> None:
    web.login()
    csrf = web.csrf()
    refused = web.client.post("/logout", data={"csrf": "0" * 64}, follow_redirects=False)
    assert refused.status_code == 403
    assert web.client.get("/", follow_redirects=False).status_code == 200
    r = web.client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE_NAME}=") and "max-age=0" in cookie
    assert web.client.get("/", follow_redirects=False).status_code == 303


def test_logout_revokes_the_session_on_the_server(web: Web) -> None:
    # Regression: the cookie was HMAC(token), the same on every login, and a copy of it kept
    # working after logout. Now logout deletes the session; a replayed cookie is worth nothing.
    web.login()
    stolen = web.client.cookies.get(COOKIE_NAME)
    assert stolen
    csrf = web.csrf()
    assert web.client.get("/api/v1/sessions").status_code == 200
    assert web.client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    web.client.cookies.set(COOKIE_NAME, stolen)  # the copy an attacker kept
    assert web.client.get("/", follow_redirects=False).status_code == 303
    assert web.client.get("/api/v1/sessions").status_code == 401
    r = web.client.post("/api/v1/memory", json={"content": "planted"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401
    assert web.node.db.scalar("SELECT COUNT(*) FROM web_sessions") == 0


def test_an_expired_session_is_not_a_login(web: Web) -> None:
    web.login()
    web.node.db.execute("UPDATE web_sessions SET expires_at = 1")
    assert web.client.get("/", follow_redirects=False).status_code == 303
    assert web.client.get("/api/v1/sessions").status_code == 401


def test_a_new_node_token_ends_every_login(settings: Settings) -> None:
    broker = ApprovalBroker()
    node = Node(settings, approver=broker)
    with TestClient(create_app(node, broker, token=TOKEN, connect_model=False), base_url=BASE) as client:
        assert client.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
        cookie = client.cookies.get(COOKIE_NAME)
    broker = ApprovalBroker()
    node = Node(settings, approver=broker)
    with TestClient(create_app(node, broker, token="a-rotated-token", connect_model=False), base_url=BASE) as client:
        client.cookies.set(COOKIE_NAME, cookie or "")
        assert client.get("/", follow_redirects=False).status_code == 303


def test_wrong_tokens_are_limited_per_address_with_retry_after(web: Web) -> None:
    # Regression: 500 wrong tokens in 0.4 s were all answered 401; now the tenth failure within a
    # minute locks the address out (the right token too, so a lockout says nothing about a guess).
    for _ in range(10):
        assert web.client.post("/login", data={"token": "guess"}, follow_redirects=False).status_code == 401
    r = web.client.post("/login", data={"token": "guess"}, follow_redirects=False)
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
    assert "Too many wrong tokens" in r.text and "set-cookie" not in r.headers
    right = web.client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert right.status_code == 429 and "set-cookie" not in right.headers


# -- pages ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_nav_csrf_and_a_strict_policy(web: Web, path: str) -> None:
    web.login()
    r = web.client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for label in ("Chat", "Sessions", "Audit", "Memory", "Health"):
        assert f">{label}</a>" in r.text
    assert 'aria-current="page"' in r.text
    assert re.search(r'<meta name="csrf-token" content="[0-9a-f]{64}">', r.text)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text  # no inline script anywhere (the policy would block it)


def test_chat_page_has_the_composer_and_the_ribbon_placeholder(web: Web) -> None:
    web.login()
    page = web.client.get("/").text
    assert 'id="composer"' in page and 'id="prompt"' in page and 'id="cancel"' in page
    assert '<div id="cognitive-ribbon" hidden></div>' in page
    assert "/static/chat.js" in page


def test_the_banner_says_how_to_get_a_model_when_none_is_reachable(web: Web) -> None:
    web.login()
    for path in PAGES:
        page = web.client.get(path).text
        assert 'id="model-banner"' in page
        assert "No model reachable" in page and "<code>ollama serve</code>" in page
        assert "COLONY_MODEL_BASE_URL" in page and "COLONY_MODEL_NAME" in page


def test_chat_page_renders_a_session_transcript(web: Web) -> None:
    sid = seed_session(web.node)
    web.login()
    page = web.client.get(f"/?session={sid}").text
    assert f'data-session-id="{sid}"' in page
    assert '<li class="msg user">Copy the notes</li>' in page
    assert '<li class="msg assistant md"><p>Done: out.txt</p>\n</li>' in page  # rendered markdown
    assert 'data-call-id="call_1"' in page and '<span class="tool-name">write_file</span>' in page
    assert '<span class="badge ok">ok</span>' in page and "approved" in page
    assert "wrote out.txt" in page
    assert "sk-secret" not in page and "[REDACTED]" in page  # arguments come from the redacted audit row
    assert "completed · 1 tool call" in page and "42 tokens" in page


HOSTILE_ANSWER = (
    "Here is **bold**, `code` and a [docs link](https://example.com/docs).\n\n"
    "```python\nprint('<b>hi</b>')\n```\n\n"
    "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">\n\n"
    "[click me](javascript:window.__pwned=3) ![tracker](https://evil.example/p.png?d=secret)\n"
)


def test_answers_render_as_sanitised_markdown(web: Web) -> None:
    sid = web.node.records.create_session(title="md", surface="web")
    tid = web.node.records.start_turn(sid, "md", None)
    web.node.records.add_message(sid, tid, UserMessage(content="show me markdown"))
    web.node.records.add_message(sid, tid, AssistantMessage(content=HOSTILE_ANSWER))
    web.node.records.finish_turn(tid, TurnEnd(status="completed", final_text=HOSTILE_ANSWER, model_requests=1,
                                              prompt_tokens=1, completion_tokens=1))
    web.login()
    for page in (web.client.get(f"/?session={sid}").text, web.client.get(f"/sessions/{sid}").text):
        answer = page[page.index('<li class="msg assistant md">'):]
        answer = answer[:answer.index("</li>")]
        assert "<strong>bold</strong>" in answer and "<code>code</code>" in answer
        assert '<a href="https://example.com/docs" rel="noopener noreferrer nofollow">docs link</a>' in answer
        assert "<pre><code>print(&#39;&lt;b&gt;hi&lt;/b&gt;&#39;)" in answer or "<pre><code>print('&lt;b&gt;hi&lt;/b&gt;')" in answer
        # The model's HTML is text, its javascript: link is not a link, and no image is loaded.
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in answer
        assert "&lt;img src=x onerror=" in answer
        for forbidden in ("<script", "<img", 'href="javascript'):
            assert forbidden not in answer, forbidden
        assert 'src="https://evil.example' not in answer


def test_unknown_session_is_a_404_page(web: Web) -> None:
    web.login()
    for path in ("/?session=ses_nope", "/sessions/ses_nope"):
        r = web.client.get(path)
        assert r.status_code == 404 and "There is no session" in r.text and "<html" in r.text


def test_session_page_lists_turns_and_transcript(web: Web) -> None:
    sid = seed_session(web.node)
    web.login()
    page = web.client.get(f"/sessions/{sid}").text
    assert f"<code>{sid}</code>" in page
    assert '<span class="badge completed">completed</span>' in page
    assert f'href="/?session={sid}"' in page and "Continue in chat" in page
    assert 'data-call-id="call_1"' in page


def test_health_page_shows_database_version_and_model_state(web: Web) -> None:
    web.login()
    page = web.client.get("/health").text
    assert '<span class="badge degraded" id="health-status">degraded</span>' in page
    assert "version 1" in page or "version " in page
    assert str(web.node.settings.db_path) in page
    assert "No model provider is connected" in page


# -- pagination ---------------------------------------------------------------------------------------------


def test_sessions_load_more_with_htmx(web: Web) -> None:
    for i in range(55):
        web.node.db.execute("INSERT INTO sessions(id, title) VALUES (?, ?)", (f"ses_{i:03d}", f"session {i}"))
    web.login()
    first = web.client.get("/sessions").text
    assert first.count('href="/sessions/ses_') == 50
    assert 'hx-get="/sessions?offset=50"' in first
    rest = web.client.get("/sessions?offset=50", headers={"HX-Request": "true"})
    assert "<html" not in rest.text and "<tr>" in rest.text
    assert rest.text.count('href="/sessions/ses_') == 5 and "hx-get" not in rest.text


def test_audit_filters_and_pages_with_htmx(web: Web) -> None:
    for i in range(60):
        tool, outcome = ("read_file", "ok") if i % 3 else ("run_command", "denied")
        web.node.records.record_tool_call(ToolCallRecord(
            session_id=None, turn_id=None, call_id=f"c{i}", tool=tool, arguments={"i": i}, outcome=outcome,
            latency_ms=1.0, approval="allow" if outcome == "ok" else "denied",
        ))
    web.login()
    page = web.client.get("/audit").text
    assert page.count("<tr data-id=") == 50 and "before_id=" in page
    assert '<option value="run_command">run_command</option>' in page and '<option value="denied">denied</option>' in page
    more = re.search(r'hx-get="(/audit\?before_id=\d+)"', page)
    assert more
    rest = web.client.get(more.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"}).text
    assert "<html" not in rest and rest.count("<tr data-id=") == 10
    denied = web.client.get("/audit?tool=run_command&outcome=denied", headers={"HX-Request": "true"}).text
    assert denied.count("<tr data-id=") == 20 and "read_file" not in denied
    selected = web.client.get("/audit?tool=run_command").text
    assert '<option value="run_command" selected>' in selected
    none = web.client.get("/audit?tool=run_command&outcome=ok", headers={"HX-Request": "true"}).text
    assert "No tool calls match these filters." in none


# -- escaping --------------------------------------------------------------------------------------------------


def test_hostile_titles_and_arguments_are_escaped_everywhere(web: Web) -> None:
    sid = seed_session(web.node, title=HOSTILE_TITLE, arg=HOSTILE_ARG)
    web.login()
    for path in ("/", f"/?session={sid}", "/sessions", f"/sessions/{sid}", "/audit"):
        body = web.client.get(path).text
        assert HOSTILE_TITLE not in body and "<img src=x" not in body, path
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in web.client.get("/sessions").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in web.client.get("/audit").text
    partial = web.client.get("/sessions", headers={"HX-Request": "true"}).text
    assert HOSTILE_TITLE not in partial


# -- static files ----------------------------------------------------------------------------------------------


def test_static_files_are_served_and_vendored_htmx_matches_its_checksum(web: Web) -> None:
    css = web.client.get("/static/colony.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = web.client.get("/static/vendor/htmx-2.0.11.min.js")
    assert js.status_code == 200
    readme = (STATIC / "vendor/README.md").read_text()
    assert hashlib.sha256(js.content).hexdigest() in readme
    assert web.client.get("/static/chat.js").status_code == 200


@pytest.mark.parametrize("path", ["/static/..%2fpages.py", "/static/%2e%2e/%2e%2e/auth.py", "/static/nope.css", "/static/vendor",
                                  "/static/x%00", "/static/colony.css%00.map", "/static/%0a"])
def test_static_refuses_traversal_and_missing_files(web: Web, path: str) -> None:
    # A NUL used to reach Path.resolve and answer 500 with a traceback.
    r = web.client.get(path)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert r.headers["x-content-type-options"] == "nosniff"


# -- transcript shaping ------------------------------------------------------------------------------------------


def test_a_live_turn_is_left_for_the_event_stream_to_replay(web: Web) -> None:
    sid = seed_session(web.node)
    records = web.node.records
    tid = records.start_turn(sid, "second", None)
    records.add_message(sid, tid, UserMessage(content="second"))
    records.add_message(sid, tid, AssistantMessage(content="partial answer"))
    messages, turns = records.load_messages(sid), records.list_turns(sid)

    live = build_transcript(messages, turns, [], is_live=lambda turn_id: turn_id == tid)
    assert live.live_turn_id == tid
    assert [i.kind for i in live.items][-2:] == ["status", "user"]  # the first turn's status, then the prompt
    assert all(i.text != "partial answer" for i in live.items)

    elsewhere = build_transcript(messages, turns, [], is_live=lambda turn_id: False)
    assert elsewhere.live_turn_id is None
    assert [i.kind for i in elsewhere.items][-2:] == ["assistant", "notice"]
    assert "another process" in elsewhere.items[-1].text


# -- memory ------------------------------------------------------------------------------------------------------


def csrf_of(page: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
    assert match
    return match.group(1)


def remember(node: Node, *texts: str) -> list[int]:
    return node.memory.add_many([MemoryIn(content=t) for t in texts])


def test_memory_page_shows_stats_search_and_the_add_form(web: Web) -> None:
    remember(web.node, "Alice works at Acme.", "Alice works at Globex.")
    web.login()
    page = web.client.get("/memory").text
    assert '<a href="/memory" aria-current="page">Memory</a>' in page
    stats = page[page.index('id="memory-stats"'):page.index("</section>")]
    assert re.search(r'stat-value">2</span><span class="stat-label">active', stats)
    assert re.search(r'stat-value">2</span><span class="stat-label">need review', stats)
    assert "minilm-static-v1" in stats
    assert 'hx-get="/memory" hx-target="#memory-results"' in page and 'name="q"' in page
    assert 'id="memory-add-form"' in page and f'name="csrf" value="{csrf_of(page)}"' in page
    # Without a query the page lists what waits for review (the two contradicting memories).
    assert 'id="memory-review"' in page and page.count('class="memory-hit flagged"') == 2


def test_memory_search_partial_shows_channel_badges_and_expanded_entities(web: Web) -> None:
    web.login()
    none = web.client.get("/memory?q=zebra+xylophone", headers={"HX-Request": "true"}).text
    assert "No memory matches “zebra xylophone”." in none
    remember(web.node, "The billing service uses the ledger library.", "The ledger library depends on libfixed.",
             "Lunch on Fridays is pizza.")
    r = web.client.get("/memory?q=What+does+the+billing+service+use%3F", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text and 'id="memory-stats"' not in r.text
    first = r.text[r.text.index('<li class="memory-hit'):r.text.index("</li>")]
    assert "The billing service uses the ledger library." in first
    assert '<span class="badge channel keyword"' in first and ">keyword #1</span>" in first
    assert re.search(r">semantic #\d</span>", first) and re.search(r">graph #\d</span>", first)
    assert '<span class="chip">ledger library</span>' in r.text
    assert 'hx-post="/memory/1/forget"' in first and 'name="next" value="/memory?q=What+does' in first
    assert "notice-box" not in r.text  # every channel ran
    full = web.client.get("/memory?q=billing").text  # the same search as a whole page (no JavaScript)
    assert "<html" in full and 'value="billing"' in full and ">keyword #1</span>" in full


def test_a_down_channel_is_a_notice_on_the_memory_page(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    broker = ApprovalBroker()
    node = Node(Settings(), approver=broker)
    with TestClient(create_app(node, broker, token=TOKEN, connect_model=False), base_url=BASE) as client:
        web = Web(client, node)
        remember(node, "Deploy keys are rotated every ninety days.")
        web.login()
        page = client.get("/memory").text
        assert "semantic channel down" in page and "COLONY_MEMORY_EMBEDDER=none" in page
        hits = client.get("/memory?q=deploy+keys", headers={"HX-Request": "true"}).text
        assert page.count("The semantic channel is down") == 1 and 'id="embedder-down"' in page
        assert hits.count("The semantic channel is down: COLONY_MEMORY_EMBEDDER=none — these results") == 1
        assert ">keyword #1</span>" in hits and "semantic #" not in hits


def test_adding_a_memory_through_the_form(web: Web) -> None:
    web.login()
    csrf = csrf_of(web.client.get("/memory").text)
    stale = web.client.post("/memory", data={"content": "x", "csrf": "0" * 64})
    assert stale.status_code == 403 and "stale" in stale.text
    r = web.client.post("/memory", data={"content": "Alice works at Acme.", "memory_type": "preference",
                                         "user_stated": "1", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/memory?added=1"
    item = web.node.memory.get(1)
    assert item is not None and (item.memory_type, item.verified, item.source_kind) == ("preference", "user_stated", "user")
    shown = web.client.get(r.headers["location"]).text
    assert "Stored memory #1." in shown and "contradicts" not in shown
    flagged = web.client.post("/memory", data={"content": "Alice works at Globex.", "csrf": csrf})
    assert "Stored memory #2." in flagged.text and "It contradicts another memory" in flagged.text
    blank = web.client.post("/memory", data={"content": "   ", "memory_type": "event", "csrf": csrf})
    assert blank.status_code == 422 and "Not stored: a memory cannot be blank." in blank.text
    assert '<option value="event" selected>' in blank.text
    too_long = web.client.post("/memory", data={"content": "y" * 64_001, "csrf": csrf})
    assert too_long.status_code == 422 and "at most 64000 characters" in too_long.text
    assert web.node.memory.stats().total == 2


def test_forget_button_with_htmx_and_without(web: Web) -> None:
    ids = remember(web.node, "Ticket INC-48213 was closed.", "Ticket INC-48214 is open.")
    web.login()
    csrf = csrf_of(web.client.get("/memory").text)
    assert web.client.post(f"/memory/{ids[0]}/forget", data={"csrf": "bad"}).status_code == 403
    swapped = web.client.post(f"/memory/{ids[0]}/forget", data={"csrf": csrf}, headers={"HX-Request": "true"})
    assert swapped.status_code == 200 and swapped.text.strip() == (
        f'<li class="memory-hit forgotten" role="status">Forgot memory #{ids[0]}.</li>')
    assert web.node.memory.get(ids[0]) is None
    plain = web.client.post(f"/memory/{ids[1]}/forget", data={"csrf": csrf, "next": "/memory?q=ticket"},
                            follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/memory?q=ticket"
    gone = web.client.post(f"/memory/{ids[1]}/forget", data={"csrf": csrf})
    assert gone.status_code == 404 and "no memory #" in gone.text
    for target in ("//evil.example/", "https://evil.example/", "/sessions"):
        (mid,) = remember(web.node, "Another.")
        offsite = web.client.post(f"/memory/{mid}/forget", data={"csrf": csrf, "next": target}, follow_redirects=False)
        assert offsite.headers["location"] == "/memory"


def test_memory_forms_without_a_login_go_to_the_login_page(web: Web) -> None:
    for path in ("/memory", "/memory/1/forget"):
        r = web.client.post(path, data={"content": "x"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fmemory"
        htmx = web.client.post(path, headers={"HX-Request": "true"}, follow_redirects=False)
        assert htmx.headers["hx-redirect"] == "/login?next=%2Fmemory"
    assert web.node.memory.stats().total == 0


def test_hostile_memory_content_and_queries_are_escaped(web: Web) -> None:
    remember(web.node, HOSTILE_TITLE + " works at Acme", HOSTILE_TITLE + " works at Globex", HOSTILE_ARG)
    web.login()
    query = "/memory?q=" + quote(HOSTILE_ARG)
    for path, headers in (("/memory", {}), ("/memory?q=alert+works", {}), ("/memory?q=alert", {"HX-Request": "true"}),
                          (query, {}), (query, {"HX-Request": "true"})):
        body = web.client.get(path, headers=headers).text
        assert HOSTILE_TITLE not in body and "<img src=x" not in body, path
    page = web.client.get("/memory?q=alert+works").text
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; works at Acme" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in web.client.get(query).text  # the query in the input
    rejected = web.client.post("/memory", data={"content": " ", "csrf": csrf_of(page)})
    assert "<script>" not in rejected.text


def test_health_page_lists_the_memory_check(web: Web) -> None:
    remember(web.node, "One fact.")
    web.login()
    page = web.client.get("/health").text
    assert "<code>memory</code>" in page and "minilm-static-v1 · 1 active · 0 without a vector" in page


# -- the Host check ------------------------------------------------------------------------------------------


def test_the_host_check_holds_for_test_clients_too(settings: Settings) -> None:
    from colony.server.hosts import HostCheck, allowed_hosts

    broker = ApprovalBroker()
    node = Node(settings, approver=broker)
    app = create_app(node, broker, token=TOKEN, connect_model=False)  # default: the loopback names, any port
    with TestClient(app) as client:  # TestClient's own Host is "testserver": not one of the node's names
        r = client.get("/api/v1/health")
        assert r.status_code == 421 and r.json()["code"] == "unknown_host"
        assert client.get("/login").status_code == 421
    for base in ("http://localhost:1234", "http://[::1]:8420", "http://127.0.0.1"):
        with TestClient(app, base_url=base) as client:
            assert client.get("/api/v1/health").status_code == 200, base

    assert allowed_hosts("127.0.0.1", 8420) == ["127.0.0.1:8420", "localhost:8420", "[::1]:8420"]
    assert allowed_hosts("::1", 80) == ["127.0.0.1:80", "127.0.0.1", "localhost:80", "localhost", "[::1]:80", "[::1]"]
    remote = allowed_hosts("0.0.0.0", 9000, ["Colony.LAN", "box:9999", "fe80::1"])
    assert remote == ["127.0.0.1:9000", "localhost:9000", "[::1]:9000", "colony.lan:9000", "box:9999", "[fe80::1]:9000"]
    check = HostCheck(app, remote)
    for good in ("colony.lan:9000", "COLONY.lan.:9000", "box:9999", "[fe80::1]:9000", "localhost:9000"):
        assert check.allows(good), good
    for bad in ("colony.lan", "colony.lan:9001", "box:9000", "evil.example:9000", "a b:9000",
                "user@localhost:9000", "[::1:9000", "localhost:0", "localhost:99999", "localhost:9000:1", ""):
        assert not check.allows(bad), bad
