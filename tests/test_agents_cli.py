"""`colony agents add|list|show|edit|remove|estimate` through Typer's runner: tables, JSON, the
rows they write, and errors with their exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from colony.cli import app
from colony.config import Settings
from colony.identity import Keyring
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.store import open_database

PROVIDERS = json.dumps([{"name": "local", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
                        {"name": "hosted", "base_url": "http://127.0.0.1:10/v1", "model": "m"}])


@pytest.fixture(autouse=True)
def _tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_PROVIDERS", PROVIDERS)


def agents(*args: str) -> Result:
    return CliRunner().invoke(app, ["agents", *args], env={"COLUMNS": "200"}, catch_exceptions=False)


def as_json(*args: str) -> Any:
    result = agents(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_lists_the_commands_with_examples() -> None:
    result = agents("--help")
    assert result.exit_code == 0
    for command in ("add", "list", "show", "edit", "remove", "estimate"):
        assert command in result.output
    add_help = agents("add", "--help").output
    assert "Examples:" in add_help and "colony agents add scout" in add_help


def test_add_list_show_edit_remove(tmp_path: Path) -> None:
    persona = tmp_path / "persona.md"
    persona.write_text("You review patches.\nBe brief.", encoding="utf-8")
    made = as_json("add", "reviewer", "--persona-file", str(persona), "--tier", "1", "--skill", "review",
                   "--skill", "python", "--description", "Reviews patches", "--price-in", "20", "--price-out", "60",
                   "--price-tool", "500", "--price-for", "web_fetch=2000", "--overhead", "1000")
    assert made["name"] == "reviewer" and made["tier"] == "hosted" and made["persona"] == "You review patches.\nBe brief."
    assert made["skills"] == ["review", "python"] and made["active"] is True
    assert made["cost"] == {"input_per_1k": 20, "output_per_1k": 60, "per_tool_call": 500,
                            "per_tool": {"web_fetch": 2000}, "overhead": 1000}

    db = open_database(Settings().db_path)
    try:
        keyring = Keyring(db, Settings())
        ledger = Ledger(SqliteLedgerStore(db), keyring.node().schnorr_key)
        ledger.mint(keyring.agent("reviewer").public_hex, 5 * MICRO // 2, "seed")
        assert db.scalar("SELECT tier FROM agent_profiles WHERE name = 'reviewer'") == "hosted"
    finally:
        db.close()

    listed = as_json("list")
    assert [a["name"] for a in listed["agents"]] == ["colony", "reviewer"]
    assert listed["tiers"] == ["default", "local", "hosted"]
    assert listed["agents"][1]["balance"] == 2_500_000 and listed["agents"][0]["configured"] is False

    table = agents("list")
    assert table.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if "reviewer" in line)
    npub = made["npub"]
    for shown in (f"{npub[:12]}…{npub[-6:]}", "review, python", "hosted", "20/60 per 1K in/out",
                  "500/call (web_fetch 2000)", "+1000", "2.5", "yes"):
        assert shown in row, (shown, row)
    assert "model tiers on this node: default, local, hosted" in table.stdout

    one = agents("show", "reviewer")
    assert one.exit_code == 0 and "Be brief." in one.stdout and made["evm_address"] in one.stdout

    edited = as_json("edit", "reviewer", "--tier", "local", "--price-out", "80", "--skill", "go")
    assert edited["tier"] == "local" and edited["skills"] == ["go"]
    assert edited["cost"]["output_per_1k"] == 80 and edited["cost"]["input_per_1k"] == 20
    assert edited["persona"] == made["persona"]

    removed = agents("remove", "reviewer")
    assert removed.exit_code == 0 and "deactivated agent reviewer" in removed.stdout
    assert as_json("show", "reviewer")["active"] is False
    refused = agents("edit", "reviewer", "--persona", "x")
    assert refused.exit_code == 1 and "deactivated" in refused.stderr and "--activate" in refused.stderr
    back = as_json("edit", "reviewer", "--activate", "--persona", "Back again.")
    assert back["active"] is True and back["persona"] == "Back again." and back["tier"] == "local"


def test_estimate_uses_the_agents_cost_model() -> None:
    as_json("add", "scout", "--persona", "You find things.", "--price-in", "20", "--price-out", "60",
            "--price-tool", "500", "--price-for", "web_fetch=2000", "--overhead", "1000")
    # 12,000 × 20/1K = 240 · 3,000 × 60/1K = 180 · 4 × 500 + 2 × 2,000 = 6,000 · + 1,000 → 7,420
    got = as_json("estimate", "scout", "--input-tokens", "12000", "--output-tokens", "3000", "--tool-calls", "4",
                  "--tool", "web_fetch=2")
    assert got == {"agent": "scout", "input": 240, "output": 180, "tools": 6_000, "overhead": 1_000, "total": 7_420}
    text = agents("estimate", "scout", "--input-tokens", "1")
    assert text.exit_code == 0 and "1001 µcredits" in text.stdout  # ceil(20/1000) = 1, plus the overhead


@pytest.mark.parametrize(("args", "code", "says"), [
    (["add", "scout"], 2, "needs a persona"),
    (["add", "Scout!", "--persona", "p"], 2, "name"),
    (["add", "scout", "--persona", "p", "--tier", "gpt-9"], 2, "This node's tiers are: 'default'"),
    (["add", "scout", "--persona", "   "], 2, "persona"),
    (["add", "scout", "--persona", "p" * 8001], 2, "persona"),
    (["add", "scout", "--persona", "p", "--price-in", "-1"], 2, "price-in"),
    (["add", "scout", "--persona", "p", "--price-for", "web_fetch"], 2, "TOOL=N"),
    (["add", "scout", "--persona", "p", "--price-for", "web fetch=2"], 2, "per_tool"),
    (["add", "colony", "--persona", "p"], 1, "already exists"),
    (["add", "node", "--persona", "p"], 1, "already exists"),
    (["show", "ghost"], 2, "No agent named 'ghost'"),
    (["edit", "ghost", "--persona", "p"], 2, "No agent named 'ghost'"),
    (["remove", "ghost"], 2, "No agent named 'ghost'"),
    (["edit", "colony", "--tier", "nope"], 2, "Unknown model tier 'nope'"),
    (["add", "scout", "--persona", "p", "--persona-file", __file__], 2, "once"),
])
def test_errors_say_what_is_wrong_and_exit_non_zero(args: list[str], code: int, says: str) -> None:
    result = agents(*args)
    assert result.exit_code == code, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    listed = as_json("list")
    assert [a["name"] for a in listed["agents"]] == ["colony"] and listed["agents"][0]["configured"] is False
