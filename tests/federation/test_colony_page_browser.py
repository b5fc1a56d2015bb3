"""The Colony page in a real browser (Debian's chromium via Playwright, as tests/test_browser.py): a
person opens it from the nav and sees the nodes, the Psi chart and the graph of payments across
nodes drawn; the hostile name and URL a member announced show as text and run nothing (no dialog, no
script error, no CSP refusal), also after htmx has swapped in a fresh copy of the live fragment.

The node's data is made before it starts (`test_colony_page.seed_colony` on the same data directory);
its federation loop is off, so nothing is sent to the members' (loopback) URLs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, expect
from test_colony_page import HOSTILE_NAME, HOSTILE_URL, PSI_VALUES, seed_colony

from colony.server.web.colony_page import REFRESH_S
from test_browser import browser, playwright, save_screenshot, ui_on  # noqa: F401  (fixtures and helpers)


def test_the_colony_page_shows_nodes_psi_and_payments_and_runs_no_peer_script(
        browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("COLONY_FEDERATION_ENABLED", "false")
    monkeypatch.setenv("COLONY_FEDERATION_HEARTBEAT_S", "600")
    world = seed_colony(tmp_path)
    with ui_on(browser, wait_for_model=False) as ui:
        page = ui.open()
        dialogs: list[str] = []

        def dismiss(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", dismiss)
        ui.login(page)
        page.get_by_role("link", name="Colony", exact=True).click()
        expect(page).to_have_url(ui.url("/colony"))
        expect(page.locator("nav a[aria-current=page]")).to_have_text("Colony")

        # The nodes: this one, B (live queen, term 3) and C (dead); B's announced strings as text.
        expect(page.locator("#colony-nodes tbody tr")).to_have_count(3)
        bee = page.locator(f'#colony-nodes tr[data-node="{world.b_pub}"]')
        expect(bee.locator(".peer-name")).to_have_text(HOSTILE_NAME)
        expect(bee.locator(".peer-url")).to_have_text(HOSTILE_URL)
        expect(bee.locator('[data-label="status"]')).to_have_text("live")
        expect(bee.locator('[data-label="role"]')).to_have_text("queen")
        expect(page.locator(f'#colony-nodes tr[data-node="{world.c_pub}"] [data-label="status"]')).to_have_text("dead")

        # Psi over time: a line through the stored readings, and the four factors of the latest.
        chart = page.locator("#colony-psi svg.psi-chart")
        expect(chart).to_be_visible()
        expect(chart).to_have_attribute("data-points", str(len(PSI_VALUES)))
        expect(chart.locator("polyline.psi-line")).to_have_count(1)
        expect(page.locator('#colony-psi-now [data-factor="velocity"]')).to_have_text("0.500")

        # The graph across nodes: four payment edges, agents in this node's colour and in B's.
        graph = page.locator("#colony-graph svg.colony-payments")
        expect(graph).to_be_visible()
        box = graph.bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 300
        expect(graph.locator("g.cg-edge")).to_have_count(4)
        expect(graph.locator('g.cg-edge[data-payer="bob"][data-payee="ada"]')).to_have_count(1)
        bob = graph.locator(f'g.cg-node[data-account="{world.keys["bob"]}"] circle')
        ada = graph.locator(f'g.cg-node[data-account="{world.keys["ada"]}"] circle')
        assert bob.get_attribute("fill") != ada.get_attribute("fill")
        bob_box, ada_box = bob.bounding_box(), ada.bounding_box()
        assert bob_box is not None and ada_box is not None and bob_box["width"] > ada_box["width"]

        # htmx fetches the live fragment again and swaps it in: still escaped, still nothing run.
        before = page.locator("#colony-live").get_attribute("data-updated")
        with page.expect_response(lambda r: r.url.endswith("/colony/live"), timeout=(REFRESH_S + 10) * 1000):
            pass
        expect(page.locator("#colony-live")).not_to_have_attribute("data-updated", before or "")
        expect(page.locator(f'#colony-nodes tr[data-node="{world.b_pub}"] .peer-name')).to_have_text(HOSTILE_NAME)
        expect(page.locator("#colony-graph g.cg-edge")).to_have_count(4)
        assert page.locator("#colony-live script, #colony-live img").count() == 0
        assert dialogs == []
        save_screenshot(page, tmp_path, "colony.png", full_page=True, publish=True)
