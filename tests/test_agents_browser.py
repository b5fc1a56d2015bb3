"""The Agents page in a real browser (Debian's chromium via Playwright, as tests/test_browser.py):
a person adds an agent from the form, sees it in the table, is told what was wrong with a bad one,
and deactivates and reactivates it — with no script error and no CSP refusal on the way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from colony.config import Settings
from colony.store import open_database
from test_browser import browser, playwright, save_screenshot, ui_on  # noqa: F401  (fixtures and helpers)


@pytest.fixture(autouse=True)
def _tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_PROVIDERS", json.dumps([
        {"name": "local", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
        {"name": "hosted", "base_url": "http://127.0.0.1:10/v1", "model": "m"}]))


def test_an_agent_is_added_refused_deactivated_and_reactivated_from_the_agents_page(
        browser: Browser, tmp_path: Path) -> None:  # noqa: F811  (the fixture imported from test_browser)
    with ui_on(browser, wait_for_model=False) as ui:
        page = ui.open()
        ui.login(page)
        page.get_by_role("link", name="Agents").click()
        expect(page).to_have_url(ui.url("/agents"))
        expect(page.locator('tr[data-agent="colony"]')).to_contain_text("no profile")

        page.locator("#agent-new summary").click()
        page.fill("#agent-name", "scout")
        page.fill("#agent-persona", "You find things in the workspace.")
        page.select_option("#agent-tier", "hosted")
        page.fill("#agent-skills", "search, summarise")
        page.fill("#agent-price-in", "20")
        page.fill("#agent-price-out", "60")
        page.fill("#agent-price-for", "web_fetch=2000")
        page.fill("#agent-overhead", "1000")
        page.get_by_role("button", name="Add").click()
        expect(page).to_have_url(ui.url("/agents?created=scout"))
        row = page.locator('tr[data-agent="scout"]')
        expect(row).to_contain_text("hosted")
        expect(row).to_contain_text("in 20 · out 60 per 1K tokens · 0/call · web_fetch 2000 · +1000/task")
        expect(row.locator(".badge.ok")).to_have_text("active")
        save_screenshot(page, tmp_path, "agents.png", full_page=True, publish=True)

        # The same name again: refused on the page, with what was typed kept in the form.
        page.locator("#agent-new summary").click()
        page.fill("#agent-name", "scout")
        page.fill("#agent-persona", "Another scout.")
        page.get_by_role("button", name="Add").click()
        expect(page.locator("#agent-error")).to_contain_text("already exists")
        expect(page.locator("#agent-persona")).to_have_value("Another scout.")

        page.goto(ui.url("/agents"))
        page.locator('tr[data-agent="scout"]').get_by_role("button", name="Deactivate").click()
        expect(page).to_have_url(ui.url("/agents"))
        expect(page.locator('tr[data-agent="scout"] .badge.warn')).to_have_text("deactivated")
        db = open_database(Settings().db_path)
        try:
            row_db = db.one("SELECT tier, active, price_per_tool FROM agent_profiles WHERE name = 'scout'")
            assert row_db == {"tier": "hosted", "active": 0, "price_per_tool": '{"web_fetch": 2000}'}
        finally:
            db.close()
        page.locator('tr[data-agent="scout"]').get_by_role("button", name="Reactivate").click()
        expect(page.locator('tr[data-agent="scout"] .badge.ok')).to_have_text("active")
        expect(page.locator("nav a[aria-current=page]")).to_have_text(re.compile("Agents"))
