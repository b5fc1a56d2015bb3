"""The Market page in a real browser (Debian's chromium via Playwright, as tests/test_browser.py):
a person opens it from the nav, watches an open auction's countdown tick, sees the colony graph
drawn, and puts a task up for auction from the form — refused first (the poster cannot cover the
budget) with what was typed kept, then posted — with no script error and no CSP refusal on the way.

The node's data is made before it starts (`market_helpers.build_world` on the same data
directory): one auction settled in the past (ada paid by colony, ada's reputation 0.6) and one
taking commitments for the next two minutes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from market_helpers import build_world, finish_task, open_auction, run_phases
from playwright.sync_api import Browser, expect

from test_browser import browser, playwright, save_screenshot, ui_on  # noqa: F401  (fixtures and helpers)

#: What a countdown shows while its deadline is ahead (market_page.countdown, market.js).
TICKING = re.compile(r"^(\d+h )?(\d+m )?\d+s$")


def _seed() -> str:
    """A paid auction in the past and an open one; returns the open auction's id."""
    world = build_world()
    try:
        world.clock.now = time.time() - 10_000
        paid = open_auction(world)
        assert run_phases(world, paid) == "awarded"
        finish_task(world, paid, "def digit_sum(n): ...")
        assert world.market.decide(paid, True, actor="test") == "paid"
        world.clock.now = time.time()
        return open_auction(world, goal="Summarise NOTES.md", commit_s=120, reveal_s=60)
    finally:
        world.node.db.close()


def test_the_market_page_counts_down_draws_the_graph_and_posts_a_task(
        browser: Browser, tmp_path: Path) -> None:  # noqa: F811  (the fixture imported from test_browser)
    current = _seed()
    with ui_on(browser, wait_for_model=False) as ui:
        page = ui.open()
        ui.login(page)
        page.get_by_role("link", name="Market", exact=True).click()
        expect(page).to_have_url(ui.url("/market"))
        expect(page.locator("nav a[aria-current=page]")).to_have_text("Market")

        # The commit deadline's countdown ticks (market.js), in the server's format.
        clock = page.locator(f'tr[data-auction="{current}"] time.countdown').first
        expect(clock).to_have_text(TICKING)
        shown = clock.text_content()
        expect(clock).not_to_have_text(shown or "")
        expect(clock).to_have_text(TICKING)

        # The colony graph: six agents (colony, ada, bob, cy, vera, the treasury), one payment.
        graph = page.locator("#colony-graph svg.colony-graph")
        expect(graph).to_be_visible()
        box = graph.bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 300
        expect(graph.locator("g.cg-node")).to_have_count(6)
        expect(graph.locator("g.cg-edge")).to_have_count(1)
        assert graph.locator('g.cg-node[data-agent="ada"] circle').get_attribute("r") == "24.4"
        assert graph.locator('g.cg-node[data-agent="bob"] circle').get_attribute("r") == "22"
        ada, bob = (graph.locator(f'g.cg-node[data-agent="{n}"] circle').bounding_box() for n in ("ada", "bob"))
        assert ada is not None and bob is not None and ada["width"] > bob["width"]  # drawn bigger, not just said
        expect(graph.locator("g.cg-edge")).to_have_attribute("data-payer", "colony")
        expect(page.locator('#market-results .badge.captured')).to_have_count(1)
        expect(page.locator('#market-reputation tr[data-agent="ada"]')).to_contain_text("0.600")

        # Post a task for auction: refused inline first, then posted.
        page.locator("#market-new summary").click()
        page.fill("#market-goal", "Write is_prime(n).")
        page.fill("#market-skills", "python")
        page.fill("#market-budget", "1000")
        page.select_option("#market-verification", "approval")
        page.get_by_role("button", name="Post for auction").click()
        expect(page.locator("#market-error")).to_contain_text("Fund its wallet or lower the reserve")
        expect(page.locator("#market-goal")).to_have_value("Write is_prime(n).")
        page.fill("#market-budget", "2.5")
        page.get_by_role("button", name="Post for auction").click()
        expect(page).to_have_url(re.compile(r"/market\?posted=[0-9a-f]{64}$"))
        expect(page.locator("#market-posted")).to_be_visible()
        expect(page.locator("#market-open tbody tr")).to_have_count(2)
        posted = page.locator("#market-open tbody tr", has_text="Write is_prime(n).")
        expect(posted).to_contain_text("2.5")
        expect(posted.locator("time.countdown").first).to_have_text(TICKING)
        save_screenshot(page, tmp_path, "market.png", full_page=True, publish=True)
