"""The web UI in a real browser: Debian's chromium driven by Playwright, against a real node server.

Each test starts a node (uvicorn on 127.0.0.1, the app `colony up` serves) whose model is the
scripted OpenAI-compatible server, logs in through the form and uses the chat as a person would:
streamed text, tool rows, approval cards, cancel, the audit page. Screenshots of the chat go to
the test's tmp dir; with UPDATE_SCREENSHOTS=1 they also replace docs/screenshots/*.png.

chromium comes from apt (bin/_browser.sh installs it); `playwright install` is never run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from colony.config import Settings
from colony.store import open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.testing import NodeServer, Reply, ScriptedModelServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
WAIT_MS = 15_000
# Assertions wait as long as actions do: a loaded CI machine can take more than expect's default 5 s.
expect.set_options(timeout=WAIT_MS)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}

#: Records every length the newest answer bubble had, to prove text arrives in pieces.
WATCH_STREAMING = """() => {
  window.__lengths = [];
  const list = document.getElementById('transcript');
  new MutationObserver(() => {
    const bubbles = list.querySelectorAll('.msg.assistant');
    if (bubbles.length) window.__lengths.push(bubbles[bubbles.length - 1].textContent.length);
  }).observe(list, {subtree: true, childList: true, characterData: true});
}"""


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: bin/test installs it, or run `sudo apt-get install -y chromium`")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@contextmanager
def running_node(*, wait_for_model: bool) -> Iterator[NodeServer]:
    with NodeServer(Settings()) as node:
        deadline = time.monotonic() + 10
        while wait_for_model and not httpx.get(f"{node.base_url}/api/v1/health").json()["model"]["available"]:
            assert time.monotonic() < deadline, "the node never connected to the scripted model"
            time.sleep(0.05)
        yield node


@dataclass
class UI:
    """A browser context on a running node; collects script errors and CSP refusals as it goes."""

    browser: Browser
    node: NodeServer
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.node.base_url + path

    def open(self, viewport: dict[str, int] = DESKTOP, *, phone: bool = False, cookies_from: Page | None = None) -> Page:
        context = self.browser.new_context(
            viewport=viewport, color_scheme="light", device_scale_factor=2 if phone else 1,
            is_mobile=phone, has_touch=phone,
        )
        context.set_default_timeout(WAIT_MS)
        if cookies_from is not None:
            context.add_cookies(cookies_from.context.cookies())  # type: ignore[arg-type]
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

        def console(msg: ConsoleMessage) -> None:
            if msg.type == "error" and ("Content Security Policy" in msg.text or "Refused" in msg.text):
                self.problems.append(f"console: {msg.text}")

        page.on("console", console)
        return page

    def login(self, page: Page, token: str | None = None) -> None:
        """Log in and wait until the chat page's scripts have run."""
        self.submit_login(page, token)
        self.wait_for_chat(page)

    @staticmethod
    def wait_for_chat(page: Page) -> None:
        """The login click returns once the redirect commits; the page's deferred scripts may not
        have run yet, and a key pressed before chat.js binds its handlers lands in a bare textarea."""
        expect(page).not_to_have_url(re.compile(r"/login"))
        page.wait_for_load_state("load")

    def submit_login(self, page: Page, token: str | None = None) -> None:
        page.goto(self.url("/"))
        expect(page).to_have_url(self.url("/login?next=%2F"))
        page.fill("#token", token or self.node.token)
        page.get_by_role("button", name="Log in").click()

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@contextmanager
def ui_on(browser: Browser, *, wait_for_model: bool = True) -> Iterator[UI]:
    with running_node(wait_for_model=wait_for_model) as node:
        ui = UI(browser, node)
        try:
            yield ui
        finally:
            ui.close()  # close the pages (and their event streams) before the server stops
    assert not ui.problems, ui.problems


def send(page: Page, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")


def save_screenshot(page: Page, tmp_path: Path, name: str, *, full_page: bool = False, publish: bool = False) -> Path:
    """Screenshot into tmp_path; ``publish`` ones also go to docs/screenshots with UPDATE_SCREENSHOTS=1."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if publish and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
    return path


# -- the flows ---------------------------------------------------------------------------------------------


def test_chat_streams_asks_for_approval_and_records_the_call(
    browser: Browser, model: ScriptedModelServer, workspace: Path, tmp_path: Path
) -> None:
    (workspace / "notes.txt").write_text("buy milk\nwater the plants\n")
    first_answer = "Your notes list two things: buy milk, and water the plants."
    final_answer = "Done — todo.txt now lists both items as a checklist."
    model.set_script([
        Reply.tool_calls([("read_file", {"path": "notes.txt"})]),
        Reply.text(first_answer, stream_chunk_size=3),
        Reply.tool_calls([("write_file", {"path": "todo.txt", "content": "- [ ] buy milk\n- [ ] water the plants\n"})],
                         text="I'll write them to todo.txt as a checklist."),
        Reply.text(final_answer, stream_chunk_size=3),
    ])
    with ui_on(browser) as ui:
        page = ui.open()
        ui.login(page)
        expect(page).to_have_url(ui.url("/"))
        expect(page.locator("#model-banner")).to_have_count(0)
        expect(page.locator("#cognitive-ribbon")).to_be_hidden()

        # Turn 1: an allowed read, then an answer streamed in small pieces.
        page.evaluate(WATCH_STREAMING)
        send(page, "What is on my notes list?")
        expect(page.locator(".msg.user")).to_have_text(["What is on my notes list?"])
        read_row = page.locator(".tool[data-call-id]").first
        expect(read_row.locator(".tool-name")).to_have_text("read_file")
        expect(read_row.locator(".badge")).to_have_text("ok")
        expect(page.locator(".msg.assistant").last).to_have_text(first_answer)
        expect(page.locator(".turn-status")).to_contain_text(["completed · 1 tool call"])
        lengths: list[int] = page.evaluate("window.__lengths")
        partial = {n for n in lengths if 0 < n < len(first_answer)}
        assert len(partial) >= 3, f"the answer did not stream in pieces: {lengths}"
        session_url = page.url
        assert "/?session=ses_" in session_url

        # Turn 2: a write that needs approval.
        send(page, "Write them to todo.txt as a checklist")
        card = page.locator(".approval")
        expect(card.locator(".question")).to_have_text("Allow write_file to run with these arguments?")
        expect(page.locator(".tool.waiting .tool-args")).to_contain_text('"path": "todo.txt"')
        expect(page.locator("#cancel")).to_be_visible()
        expect(page.locator(".msg.assistant", has_text="I'll write them to todo.txt")).to_be_visible()
        save_screenshot(page, tmp_path, "chat.png", publish=True)

        # The same moment on a phone, following the running turn from a fresh page load.
        phone = ui.open(PHONE, phone=True, cookies_from=page)
        phone.goto(session_url)
        expect(phone.locator(".approval .question")).to_be_visible()
        expect(phone.locator(".msg.user")).to_have_count(2)
        save_screenshot(phone, tmp_path, "chat-phone.png", publish=True)
        phone.context.close()
        ui.contexts.remove(phone.context)

        assert not (workspace / "todo.txt").exists()
        card.get_by_role("button", name="Allow").click()
        expect(card.locator(".decision")).to_have_text("Allowed")
        write_row = page.locator(".tool[data-call-id]").last
        expect(write_row.locator(".badge")).to_have_text("ok")
        expect(write_row.locator(".tool-meta")).to_contain_text("approved")
        expect(page.locator(".msg.assistant").last).to_have_text(final_answer)
        expect(page.locator(".turn-status").last).to_contain_text("completed · 1 tool call")
        expect(page.locator("#cancel")).to_be_hidden()
        assert (workspace / "todo.txt").read_text() == "- [ ] buy milk\n- [ ] water the plants\n"

        # A reload renders the same conversation from the database.
        page.reload()
        expect(page.locator(".msg.user")).to_have_count(2)
        expect(page.locator(".tool .tool-name")).to_have_text(["read_file", "write_file"])
        expect(page.locator(".msg.assistant").last).to_have_text(final_answer)

        # The audit page shows the approved write.
        page.get_by_role("link", name="Audit").click()
        expect(page).to_have_url(ui.url("/audit"))
        row = page.locator("#audit-rows tr", has_text="write_file")
        expect(row.locator(".badge").first).to_have_text("ok")
        expect(row).to_contain_text("approved")
        expect(row).to_contain_text("todo.txt")
        page.select_option("#f-tool", "read_file")
        expect(page.locator("#audit-rows tr[data-id]")).to_have_count(1)
        expect(page).to_have_url(ui.url("/audit?tool=read_file&outcome="))
        save_screenshot(page, tmp_path, "audit.png")

    db = open_database(Settings().db_path)
    try:
        calls = [(c["tool"], c["outcome"], c["approval"]) for c in reversed(SqliteRecordStore(db).list_tool_calls())]
    finally:
        db.close()
    assert calls == [("read_file", "ok", "allow"), ("write_file", "ok", "approved")]
    assert len(model.requests) == 4


def test_deny_after_a_reload_keeps_the_file_unwritten(
    browser: Browser, model: ScriptedModelServer, workspace: Path
) -> None:
    model.set_script([
        Reply.tool_calls([("write_file", {"path": "secret.txt", "content": "nope"})]),
        Reply.text("Understood: I did not write secret.txt."),
    ])
    with ui_on(browser) as ui:
        page = ui.open()
        ui.login(page)
        send(page, "Put 'nope' into secret.txt")
        expect(page.locator(".approval .question")).to_be_visible()
        # Reloading mid-turn replays the live turn, approval card included.
        page.reload()
        card = page.locator(".approval")
        expect(card.locator(".question")).to_be_visible()
        expect(page.locator(".msg.user")).to_have_text(["Put 'nope' into secret.txt"])
        card.get_by_role("button", name="Deny").click()
        expect(card.locator(".decision")).to_have_text("Denied")
        row = page.locator(".tool[data-call-id]")
        expect(row.locator(".badge")).to_have_text("denied")
        expect(row).to_have_class("tool failed")
        expect(page.locator(".msg.assistant").last).to_have_text("Understood: I did not write secret.txt.")
        expect(page.locator(".turn-status")).to_contain_text("completed")

        page.goto(ui.url("/audit?outcome=denied"))
        expect(page.locator("#audit-rows tr[data-id]")).to_have_count(1)
        expect(page.locator("#audit-rows")).to_contain_text("secret.txt")
    assert not (workspace / "secret.txt").exists()


def test_a_decided_approval_answers_409_and_the_card_says_so(browser: Browser, model: ScriptedModelServer) -> None:
    model.set_script([
        Reply.tool_calls([("write_file", {"path": "a.txt", "content": "a"})]),
        Reply.text("ok"),
    ])
    with ui_on(browser) as ui:
        page = ui.open()
        ui.login(page)
        send(page, "write a.txt")
        card = page.locator(".approval")
        expect(card.locator(".question")).to_be_visible()
        # Someone else (another tab, the CLI) decides first; this card's click then gets a 409.
        approval_id = card.get_attribute("data-approval-id")
        page.route("**/api/v1/approvals/*", lambda route: route.fulfill(
            status=409, content_type="application/json",
            body='{"code": "not_pending", "message": "Approval is already approved."}',
        ))
        card.get_by_role("button", name="Allow").click()
        expect(card.locator(".decision")).to_have_text("This request expired or was already decided.")
        page.unroute("**/api/v1/approvals/*")
        r = httpx.post(ui.url(f"/api/v1/approvals/{approval_id}"), json={"decision": "deny"}, headers=ui.node.auth)
        assert r.status_code == 200
        expect(page.locator(".turn-status")).to_contain_text("completed")


def test_cancel_stops_a_running_turn(browser: Browser, model: ScriptedModelServer) -> None:
    model.set_script([Reply.text("far too late", delay_s=60)])
    with ui_on(browser) as ui:
        page = ui.open()
        ui.login(page)
        send(page, "take your time")
        cancel = page.locator("#cancel")
        expect(cancel).to_be_visible()
        expect(page.locator("#send")).to_be_disabled()
        cancel.click()
        expect(page.locator(".turn-status")).to_contain_text("cancelled")
        expect(cancel).to_be_hidden()
        expect(page.locator("#send")).to_be_enabled()
        expect(page.locator(".msg.assistant")).to_have_count(0)


def test_cancel_pressed_before_the_node_answers_is_carried_out(browser: Browser, model: ScriptedModelServer) -> None:
    # Regression: the Cancel button shows as soon as Send is pressed; a click before POST /chat
    # returned the turn id used to be dropped, and the turn ran on.
    model.set_script([Reply.text("far too late", delay_s=60)])
    held: list[Route] = []
    with ui_on(browser) as ui:
        page = ui.open()
        ui.login(page)
        page.route("**/api/v1/chat", lambda route: held.append(route))
        send(page, "take your time")
        cancel = page.locator("#cancel")
        expect(cancel).to_be_visible()
        cancel.click()
        expect(cancel).to_have_text("Cancelling…")
        # The route handler runs when the sync API next pumps events; give it a moment to.
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(50)
        assert len(held) == 1
        held[0].continue_()
        expect(page.locator(".turn-status")).to_contain_text("cancelled")
        expect(cancel).to_be_hidden()
        expect(page.locator("#send")).to_be_enabled()


def test_without_a_model_the_banner_explains_and_sending_shows_the_error(
    browser: Browser, tmp_path: Path
) -> None:
    with ui_on(browser, wait_for_model=False) as ui:
        page = ui.open()
        ui.submit_login(page, token="not-the-token")
        expect(page.locator("#login-error")).to_contain_text("not this node's token")
        page.fill("#token", ui.node.token)
        page.get_by_role("button", name="Log in").click()
        ui.wait_for_chat(page)
        banner = page.locator("#model-banner")
        expect(banner).to_contain_text("No model reachable — start Ollama (ollama serve), llama.cpp server or vLLM")
        expect(banner).to_contain_text("COLONY_MODEL_BASE_URL and COLONY_MODEL_NAME, then reload")
        send(page, "hello?")
        error = page.locator("#chat-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("COLONY_MODEL_BASE_URL")
        expect(page.locator("#prompt")).to_have_value("hello?")  # nothing typed is lost
        expect(page.locator("#send")).to_be_enabled()

        page.get_by_role("link", name="Health").click()
        expect(page.locator("#health-status")).to_have_text("degraded")
        expect(page.locator("#model-banner")).to_be_visible()
        save_screenshot(page, tmp_path, "health.png", full_page=True)

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(ui.url("/login"))
        page.goto(ui.url("/sessions"))
        expect(page).to_have_url(ui.url("/login?next=%2Fsessions"))


def test_htmx_loads_more_sessions_in_place(browser: Browser) -> None:
    db = open_database(Settings().db_path)
    try:
        for i in range(57):
            db.execute("INSERT INTO sessions(id, title) VALUES (?, ?)", (f"ses_{i:03d}", f"session number {i}"))
    finally:
        db.close()
    with ui_on(browser, wait_for_model=False) as ui:
        page = ui.open()
        ui.login(page)
        page.goto(ui.url("/sessions"))
        rows = page.locator("table tbody tr:not(.more)")
        expect(rows).to_have_count(50)
        page.get_by_role("link", name="Load more").click()
        expect(rows).to_have_count(57)  # swapped into the same table, no navigation
        expect(page).to_have_url(ui.url("/sessions"))
        expect(page.get_by_role("link", name="Load more")).to_have_count(0)
        expect(page.get_by_role("link", name="session number 0", exact=True)).to_be_visible()


def test_memory_page_adds_searches_and_forgets(browser: Browser, model: ScriptedModelServer, tmp_path: Path) -> None:
    with ui_on(browser) as ui:
        for text in ("The ledger library depends on libfixed.", "Lunch on Fridays is pizza.",
                     "Alice prefers short answers.", "Deploy keys are rotated every ninety days."):
            r = httpx.post(ui.url("/api/v1/memory"), json={"content": text}, headers=ui.node.auth)
            assert r.status_code == 201
        page = ui.open()
        ui.login(page)
        page.get_by_role("link", name="Memory").click()
        expect(page).to_have_url(ui.url("/memory"))
        expect(page.locator("#memory-stats")).to_contain_text("4active")

        # Add one through the form (a plain POST with the CSRF field, then back to the page).
        page.get_by_text("Add a memory").click()
        page.fill("#memory-content", "The billing service uses the ledger library.")
        page.select_option("#memory-type", "fact")
        page.get_by_role("button", name="Remember").click()
        expect(page.locator("#memory-added")).to_contain_text("Stored memory #5.")
        expect(page.locator("#memory-stats")).to_contain_text("5active")

        # Search: htmx swaps the results in place and puts the query in the address bar.
        page.fill("#memory-q", "What does the billing service use?")
        page.get_by_role("button", name="Search").click()
        hits = page.locator("#memory-hits .memory-hit")
        first = hits.first
        expect(first.locator(".memory-content")).to_have_text("The billing service uses the ledger library.")
        badges = first.locator(".badge.channel")
        expect(badges).to_have_count(3)
        expect(first.locator(".badge.channel.keyword")).to_have_text("keyword #1")
        expect(first.locator(".badge.channel.semantic")).to_have_text(re.compile(r"semantic #\d+"))
        expect(first.locator(".badge.channel.graph")).to_have_text(re.compile(r"graph #\d+"))
        expect(page.locator(".expanded .chip", has_text="ledger library")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/memory\?q=What(%20|\+)does(%20|\+)the"))
        save_screenshot(page, tmp_path, "memory.png", full_page=True, publish=True)

        # Forget (after the confirmation) swaps the card for a note; the memory is gone for good.
        page.once("dialog", lambda dialog: dialog.accept())
        first.get_by_role("button", name="Forget").click()
        expect(page.locator(".memory-hit.forgotten")).to_have_text("Forgot memory #5.")
        r = httpx.get(ui.url("/api/v1/memory/5"), headers=ui.node.auth)
        assert r.status_code == 404


# -- issue 12: rendered answers, hostile cartridges, the tasks board ------------------------------------------------

HOSTILE_MARKDOWN = (
    "Here is **bold**, `code` and a [docs link](https://example.com/docs).\n\n"
    "```python\nprint('<b>hi</b>')\n```\n\n"
    "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">\n\n"
    "[click me](javascript:window.__pwned=3)\n"
)


def assert_rendered_safely(page: Page) -> None:
    answer = page.locator(".msg.assistant").last
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("p code")).to_have_text("code")
    expect(answer.locator("pre code")).to_have_text("print('<b>hi</b>')\n")
    expect(answer.locator("a")).to_have_attribute("href", "https://example.com/docs")
    expect(answer).to_contain_text("<script>window.__pwned = 1</script>")  # shown as text
    assert answer.locator("script, img, iframe, [onerror]").count() == 0
    assert answer.locator('a[href^="javascript"]').count() == 0
    assert page.evaluate("window.__pwned") is None


def test_answers_render_as_markdown_and_the_models_html_stays_text(
    browser: Browser, model: ScriptedModelServer
) -> None:
    # Regression: answers showed raw markdown (**bold**, fences). Now they are rendered on the
    # server with raw HTML off and sanitised; a script or handler the model writes never runs.
    model.set_script([Reply.text(HOSTILE_MARKDOWN, stream_chunk_size=7)])
    with ui_on(browser) as ui:
        page = ui.open()
        ui.login(page)
        send(page, "show me some markdown")
        expect(page.locator(".turn-status")).to_contain_text("completed")
        assert_rendered_safely(page)
        page.reload()  # the server-rendered transcript renders the same way
        expect(page.locator(".msg.user")).to_have_count(1)
        assert_rendered_safely(page)


HOSTILE_CARTRIDGE = r'''
PAGE = """<!doctype html><html><head><title>hostile</title></head><body><pre id="out">running</pre><script>
(async function () {
  const results = {};
  const approval = new URLSearchParams(location.search).get("approval");
  async function attempt(name, fn) {
    try { results[name] = String(await fn()); } catch (e) { results[name] = "blocked: " + e.name; }
  }
  await attempt("origin", async () => window.origin);
  await attempt("cookie", async () => document.cookie);
  await attempt("storage", async () => { localStorage.setItem("x", "1"); return "stored"; });
  await attempt("read_ui", async () => {
    const r = await fetch("/", {credentials: "include"});
    const m = (await r.text()).match(/csrf-token" content="([0-9a-f]+)"/);
    return m ? "csrf:" + m[1] : "no csrf in a " + r.status;
  });
  const csrf = results.read_ui.startsWith("csrf:") ? results.read_ui.slice(5) : "";
  await attempt("sessions", async () => {
    const r = await fetch("/api/v1/sessions", {credentials: "include"});
    return "status " + r.status + " " + (await r.text()).slice(0, 60);
  });
  await attempt("approve", async () => {
    const r = await fetch("/api/v1/approvals/" + approval, {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify({decision: "allow"})});
    return "status " + r.status;
  });
  await attempt("approve_blind", async () => {
    await fetch("/api/v1/approvals/" + approval, {method: "POST", credentials: "include", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({decision: "allow"})});
    return "sent";
  });
  await attempt("memory", async () => {
    const r = await fetch("/api/v1/memory", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify({content: "planted"})});
    return "status " + r.status;
  });
  await attempt("frame_ui", () => new Promise((resolve) => {
    const f = document.createElement("iframe");
    f.onload = () => { try { resolve("read: " + f.contentDocument.title); } catch (e) { resolve("blocked: " + e.name); } };
    f.src = "/";
    document.body.appendChild(f);
    setTimeout(() => resolve("no load"), 5000);
  }));
  document.getElementById("out").textContent = JSON.stringify(results);
})();
</script></body></html>"""


def handle(request, kv, log):
    return {"status": 200, "headers": {"content-type": "text/html; charset=utf-8", "set-cookie": "colony_session=evil"},
            "body": PAGE}
'''


def pending_approval(ui: UI) -> str:
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        items = httpx.get(ui.url("/api/v1/approvals"), params={"status": "pending"}, headers=ui.node.auth).json()["items"]
        if items:
            return str(items[0]["id"])
        time.sleep(0.05)
    raise AssertionError("no approval became pending")


def test_a_hostile_cartridge_page_can_do_nothing_with_the_users_session(
    browser: Browser, model: ScriptedModelServer, workspace: Path, wasm_cache: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: /c/{slug} served agent-written HTML on the UI's own origin. Its script read the
    # CSRF token from /, listed sessions, added a memory and approved a pending write. Now the
    # answer carries CSP sandbox (an opaque origin) and frame-ancestors 'none'.
    from colony.cartridges import Cartridges

    monkeypatch.setenv("COLONY_SANDBOX_CACHE_DIR", str(wasm_cache))
    model.set_script([
        Reply.tool_calls([("write_file", {"path": "owned.txt", "content": "the cartridge approved this"})]),
        Reply.text("not written"),
    ])
    with ui_on(browser) as ui:
        db = open_database(Settings().db_path)
        try:
            Cartridges(db, Settings()).deploy("evil", HOSTILE_CARTRIDGE, lang="python")
        finally:
            db.close()
        page = ui.open()
        ui.login(page)
        send(page, "write owned.txt")
        expect(page.locator(".approval .question")).to_be_visible()
        approval = pending_approval(ui)

        # The logged-in user opens the cartridge (a link in a chat, say), in its own tab.
        hostile_context = browser.new_context()
        ui.contexts.append(hostile_context)  # closed with the others; its console refusals are expected
        hostile_context.add_cookies(page.context.cookies())  # type: ignore[arg-type]
        tab = hostile_context.new_page()
        tab.goto(ui.url(f"/c/evil?approval={approval}"))
        expect(tab.locator("#out")).not_to_have_text("running", timeout=WAIT_MS)
        results = json.loads(tab.locator("#out").inner_text())
        assert results["origin"] == "null"  # an opaque origin: not the node's
        assert results["cookie"].startswith("blocked") and results["storage"].startswith("blocked")
        for name in ("read_ui", "sessions", "approve", "memory"):
            assert results[name].startswith("blocked"), (name, results[name])
        assert not results["frame_ui"].startswith("read"), results["frame_ui"]
        cookies = {c["name"]: c["value"] for c in hostile_context.cookies()}
        assert cookies["colony_session"] != "evil"  # the cartridge cannot set the node's cookies

        # Another page on this host (another loopback port) cannot frame it either.
        with page_server(f'<iframe id="f" src="{ui.url(f"/c/evil?approval={approval}")}"></iframe>') as other:
            framer = hostile_context.new_page()
            framer.goto(other)
            framer.wait_for_load_state("load")
            framed = [f for f in framer.frames if f != framer.main_frame]
            assert framed and all(f.locator("#out").count() == 0 for f in framed)

        # Nothing happened on the node: still pending, no memory, no file.
        still = httpx.get(ui.url("/api/v1/approvals"), params={"status": "pending"}, headers=ui.node.auth).json()
        assert [a["id"] for a in still["items"]] == [approval]
        assert httpx.get(ui.url("/api/v1/memory/stats"), headers=ui.node.auth).json()["total"] == 0
        assert not (workspace / "owned.txt").exists()
        page.locator(".approval").get_by_role("button", name="Deny").click()
        expect(page.locator(".turn-status")).to_contain_text("completed")
    assert not (workspace / "owned.txt").exists()


@contextmanager
def page_server(html: str) -> Iterator[str]:
    """Serve ``html`` at / from another port on loopback (a different origin, the same site)."""
    body = ("<!doctype html><html><body>" + html + "</body></html>").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_task_is_posted_cancelled_and_approved_from_the_tasks_page(browser: Browser) -> None:
    with ui_on(browser, wait_for_model=False) as ui:
        page = ui.open()
        ui.login(page)
        page.get_by_role("link", name="Tasks").click()
        page.locator("#task-new summary").click()
        page.fill("#task-goal", "Summarize notes.txt into summary.md")
        page.fill("#task-priority", "5")
        page.get_by_role("button", name="Post").click()
        expect(page).to_have_url(re.compile(r"/tasks/task_[0-9a-f]{16}$"))
        expect(page.locator("#task-state")).to_have_text("posted")
        page.locator("#task-cancel").click()
        expect(page.locator("#task-state")).to_have_text("cancelled")

        # One that needs a person first: approve it from the board's row.
        page.goto(ui.url("/tasks"))
        page.locator("#task-new summary").click()
        page.fill("#task-goal", "Deploy the report")
        page.check("input[name=approve_first]")
        page.get_by_role("button", name="Post").click()
        task_id = page.url.rsplit("/", 1)[1]
        db = open_database(Settings().db_path)
        try:
            from colony.tasks import SqliteTaskStore
            from colony.tasks.hitl import pause_for_task

            store = SqliteTaskStore(db)
            lease = store.claim("worker-1", 60)
            assert lease is not None and lease.task_id == task_id
            pause_for_task(store, lease, 60)
            page.goto(ui.url("/tasks"))
            row = page.locator(f'li[data-task-id="{task_id}"]')
            expect(row.locator(".badge")).to_have_text("awaiting_approval")
            row.get_by_role("button", name="Approve").click()
            expect(page).to_have_url(ui.url("/tasks"))
            expect(page.locator(f'li[data-task-id="{task_id}"] .badge')).to_have_text("posted")
            assert store.get(task_id).approved and store.events(task_id)[-1].actor == "web"
        finally:
            db.close()
