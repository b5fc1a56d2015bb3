"""The web UI in a real browser: Debian's chromium driven by Playwright, against a real node server.

Each test starts a node (uvicorn on 127.0.0.1, the same app `colony up` serves) whose model is the
scripted OpenAI-compatible server, logs in through the form and uses the chat as a person would:
streamed text, tool rows, approval cards, cancel, the audit page. Screenshots of the chat are
written to the test's tmp dir; set UPDATE_SCREENSHOTS=1 to also refresh docs/screenshots/.

chromium comes from apt (bin/_browser.sh installs it); `playwright install` is never run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, expect, sync_playwright

from colony.config import Settings
from colony.server import ROUTERS
from colony.server.web import web_router
from colony.store import open_database
from colony.store.audit import list_tool_calls
from colony.testing import NodeServer, Reply, ScriptedModelServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
WAIT_MS = 15_000

if web_router not in ROUTERS:  # until create_app lists the web router itself
    ROUTERS.append(web_router)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run bin/test (it installs it) or `sudo apt-get install -y chromium`")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer([], on_exhausted="error")
    server.start()
    monkeypatch.setenv("COLONY_MODEL_BASE_URL", server.base_url)
    monkeypatch.setenv("COLONY_MODEL_NAME", "scripted")
    monkeypatch.setenv("COLONY_RETRY_BASE_DELAY_S", "0.01")
    yield server
    server.stop()


@dataclass
class UI:
    """A logged-in browser page on a running node, collecting page errors as it goes."""

    node: NodeServer
    context: BrowserContext
    page: Page
    problems: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.node.base_url + path

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

        def console(msg: ConsoleMessage) -> None:
            if msg.type == "error" and ("Content Security Policy" in msg.text or "Refused" in msg.text):
                self.problems.append(f"console: {msg.text}")

        page.on("console", console)

    def send(self, prompt: str) -> None:
        self.page.fill("#prompt", prompt)
        self.page.press("#prompt", "Enter")


@contextmanager_fixture := None  # placeholder removed below
