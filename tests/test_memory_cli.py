"""`colony memory …`: the real commands (Typer's runner, in process) on the real memory — static
embedder, SQLite under tmp_path — plus one run of the installed entry point in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from colony.cli import app
from colony.cli.memory import IMPORT_BATCH, parse_duration
from colony.config import Settings
from colony.memory import IngestReport, Memory, MemoryIn, open_memory
from colony.store import open_database

COMMANDS = ("add", "recall", "forget", "correct", "history", "review", "stats", "curate", "import", "export", "reindex")


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, ["memory", *args], env={"COLUMNS": "200", **env}, catch_exceptions=False)


@pytest.fixture
def mem() -> Iterator[Memory]:
    """The same database the commands open, for checking what they wrote."""
    settings = Settings()
    db = open_database(settings.db_path)
    yield open_memory(db, settings)
    db.close()


def add(*args: str, **env: str) -> int:
    r = run("add", *args, **env)
    assert r.exit_code == 0, r.output
    return int(r.stdout.strip())


def as_json(*args: str) -> Any:
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# -- help ------------------------------------------------------------------------------------------


def test_the_entry_point_lists_every_memory_command_with_examples() -> None:
    top = subprocess.run([sys.executable, "-m", "colony", "--help"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200"})
    assert top.returncode == 0 and "memory" in top.stdout
    r = subprocess.run([sys.executable, "-m", "colony", "memory", "--help"], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0
    for command in COMMANDS:
        assert command in r.stdout
    for command in COMMANDS:
        text = run(command, "--help").stdout
        assert "Examples" in text and f"colony memory {command}" in text, command


# -- add ---------------------------------------------------------------------------------------------


def test_add_prints_the_id_and_stores_every_field(mem: Memory) -> None:
    before = datetime.now(UTC)
    mid = add("Alice prefers short answers.", "--type", "preference", "--user-stated", "--confidence", "0.9",
              "--sensitivity", "confidential", "--expires-in", "7d")
    item = mem.get(mid)
    assert item is not None
    assert (item.content, item.memory_type, item.verified, item.confidence, item.sensitivity, item.source_kind) == (
        "Alice prefers short answers.", "preference", "user_stated", 0.9, "confidential", "user")
    assert item.expires_at is not None
    assert timedelta(days=7) - timedelta(minutes=1) < item.expires_at - before < timedelta(days=7, minutes=1)
    assert as_json("add", "Second.") == {"id": mid + 1, "unembedded": False, "flagged": []}


@pytest.mark.parametrize(("text", "expected"), [("90s", 90), ("30m", 1800), ("12h", 43_200), ("7d", 604_800),
                                                ("2w", 1_209_600), (" 3D ", 259_200)])
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text).total_seconds() == expected


@pytest.mark.parametrize("bad", ["0d", "7", "d", "7y", "-1d", "1.5h"])
def test_a_bad_duration_is_a_usage_error_that_names_the_format(bad: str) -> None:
    r = run("add", "x", "--expires-in", bad)
    assert r.exit_code == 2 and "90s, 30m, 12h, 7d, 2w" in r.stderr


def test_invalid_memories_exit_1_with_the_rule(mem: Memory) -> None:
    blank = run("add", "   ")
    assert blank.exit_code == 1 and "a memory cannot be blank" in blank.stderr and "hint:" in blank.stderr
    assert run("add", "x", "--confidence", "2").exit_code == 2
    assert run("add", "x", "--type", "rumour").exit_code == 2
    assert mem.stats().total == 0


def test_add_says_when_a_memory_has_no_vector_and_reindex_fixes_it(mem: Memory) -> None:
    r = run("add", "Deploy keys are rotated every ninety days.", COLONY_MEMORY_EMBEDDER="none")
    assert r.exit_code == 0 and r.stdout.strip() == "1"
    assert "stored without a vector" in r.stderr and "colony memory reindex" in r.stderr
    down = run("reindex", COLONY_MEMORY_EMBEDDER="none")
    assert down.exit_code == 3 and "COLONY_MEMORY_EMBEDDER" in down.stderr
    warned = run("recall", "deploy keys", COLONY_MEMORY_EMBEDDER="none")
    assert "the semantic channel is down" in warned.stderr and "Deploy keys" in warned.stdout
    assert mem.stats().unembedded == 1
    fixed = run("reindex")
    assert fixed.exit_code == 0 and "embedded 1 memory" in fixed.stdout
    assert mem.stats().unembedded == 0
    assert mem.recall("how often do credentials change?", channels={"semantic"}).hits[0].memory.id == 1


def test_a_contradiction_is_flagged_then_reviewed_and_resolved(mem: Memory) -> None:
    first = add("Alice works at Acme.")
    r = run("add", "Alice works at Globex.")
    assert f"memory 2 contradicts memory {first}" in r.stderr and "colony memory review" in r.stderr
    queue = as_json("review")["items"]
    assert [m["id"] for m in queue] == [1, 2]
    table = run("review").stdout
    assert "needs review" in table and "Alice works at Globex." in table
    resolved = run("review", "--resolve", "1")
    assert resolved.exit_code == 0 and "memory 1 reviewed" in resolved.stdout
    assert [m["id"] for m in as_json("review")["items"]] == [2]
    missing = run("review", "--resolve", "99")
    assert missing.exit_code == 1 and "no memory 99" in missing.stderr
    run("review", "--resolve", "2")
    assert run("review").stdout.strip() == "nothing to review"


# -- recall ---------------------------------------------------------------------------------------------


def seed() -> list[int]:
    return [add(t) for t in (
        "Ticket INC-48213 was closed after the cache fix.",
        "The billing service uses the ledger library.",
        "The ledger library depends on libfixed.",
        "Lunch on Fridays is pizza.",
    )]


def test_recall_prints_a_ranked_table_and_explains_on_request() -> None:
    ids = seed()
    plain = run("recall", "What does the billing service use?", "-k", "2")
    assert plain.exit_code == 0
    assert "rank" in plain.stdout and "score" in plain.stdout and "found by" not in plain.stdout
    assert "The billing service uses the ledger library." in plain.stdout
    assert "Lunch on Fridays" not in plain.stdout  # -k 2
    explained = run("recall", "What does the billing service use?", "--explain").stdout
    row = next(line for line in explained.splitlines() if "The billing service uses" in line)
    assert f" {ids[1]} " in row and "keyword #1" in row and "semantic #" in row and "graph #" in row
    assert "expanded entities: " in explained and "ledger library" in explained
    assert "graph" in explained and "timings:" in explained and "total" in explained
    assert "channel weights for this query: graph ×" in explained and "keyword coverage" in explained


def test_recall_json_and_channel_filter() -> None:
    ids = seed()
    body = as_json("recall", "INC-48213", "--channel", "keyword")
    assert body["hits"][0]["memory"]["id"] == ids[0]
    assert {c["channel"] for h in body["hits"] for c in h["channels"]} == {"keyword"}
    assert set(body["timings_ms"]) == {"keyword", "total"}
    both = as_json("recall", "billing service", "-c", "keyword", "-c", "graph")
    assert set(both["timings_ms"]) - {"embed"} == {"keyword", "graph", "total"}
    assert run("recall", "x", "--channel", "telepathy").exit_code == 2
    blank = run("recall", "  ")
    assert blank.exit_code == 2 and "blank" in blank.stderr


def test_recall_with_nothing_stored_says_so() -> None:
    r = run("recall", "anything at all")
    assert r.exit_code == 0 and r.stdout == "" and "no memories match" in r.stderr


def test_markup_in_memories_is_printed_literally() -> None:
    add("[bold red]not markup[/] and [link=http://x]no link[/link]")
    out = run("recall", "markup link").stdout
    assert "[bold red]not markup[/]" in out


# -- forget, correct, history -------------------------------------------------------------------------------


def test_forget_removes_and_an_unknown_id_exits_1_with_a_hint(mem: Memory) -> None:
    mid = add("Ticket INC-48213 was closed.")
    r = run("forget", str(mid))
    assert r.exit_code == 0 and f"forgot memory {mid}" in r.stdout
    assert mem.get(mid) is None and mem.recall("INC-48213").hits == []
    again = run("forget", str(mid))
    assert again.exit_code == 1
    assert f"no memory {mid}" in again.stderr and "colony memory recall" in again.stderr


def test_correct_supersedes_and_history_shows_the_chain(mem: Memory) -> None:
    old = add("The office is in Leeds.", "--type", "fact", "--confidence", "0.6")
    r = run("correct", str(old), "The office is in York.", "--user-stated")
    assert r.exit_code == 0 and f"memory {old} corrected by 2" in r.stdout
    new = mem.get(2)
    assert new is not None and new.verified == "user_stated" and new.confidence == 0.6
    chain = as_json("history", "2")["items"]
    assert [(m["id"], m["superseded_by"]) for m in chain] == [(old, 2), (2, None)]
    table = run("history", str(old)).stdout
    assert "corrected by 2" in table and "current" in table and "The office is in York." in table
    twice = run("correct", str(old), "The office is in Hull.")
    assert twice.exit_code == 1 and "already corrected by 2" in twice.stderr
    assert run("correct", "77", "x").exit_code == 1
    assert run("history", "77").exit_code == 1
    assert run("correct", "2", " ").exit_code == 1


# -- stats, curate -------------------------------------------------------------------------------------------


def test_stats_and_curate(mem: Memory) -> None:
    add("Lunch on Fridays is pizza.", "--type", "event")
    add("Lunch on Fridays is pizza.", "--type", "event", "--user-stated")
    add("Alice works at Acme.")
    mem.add(MemoryIn(content="The sale ended.", expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
    stats = as_json("stats")
    assert (stats["total"], stats["active"], stats["expired"]) == (4, 3, 1)
    assert stats["embedder"] == "minilm-static-v1" and stats["embedder_error"] is None
    table = run("stats").stdout
    assert "active" in table and "minilm-static-v1" in table and "event" in table
    report = as_json("curate")
    assert report["expired"] == 1 and report["duplicates_removed"] == 1
    assert "expired 0 · duplicates removed 0" in run("curate").stdout
    assert as_json("stats")["total"] == 2
    down = run("stats", COLONY_MEMORY_EMBEDDER="none").stdout
    assert "none" in down and "COLONY_MEMORY_EMBEDDER=none" in down


# -- import / export ------------------------------------------------------------------------------------------


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_import_reports_bad_lines_by_number_and_skips_them(tmp_path: Path, mem: Memory) -> None:
    src = write_lines(tmp_path / "in.jsonl", [
        json.dumps({"content": "The billing service uses the ledger library.", "verified": "user_stated"}),
        "not json",
        "",
        json.dumps(["a list"]),
        json.dumps({"content": "  "}),
        json.dumps({"content": "ok", "confidence": 3}),
        json.dumps({"content": "Lunch on Fridays is pizza.", "memory_type": "event", "source_kind": "agent"}),
    ])
    r = run("import", str(src))
    assert r.exit_code == 0, r.output
    for expected in ("line 2: not JSON", "line 4: not a JSON object", "line 5: content: a memory cannot be blank",
                     "line 6: confidence:"):
        assert expected in r.stderr
    assert "line 3" not in r.stderr  # blank lines are not errors
    assert "imported 2 · skipped 4 invalid" in r.stdout
    items = [mem.get(i) for i in (1, 2)]
    assert [(m.content[:7], m.source_kind, m.verified) for m in items if m] == [
        ("The bil", "import", "user_stated"), ("Lunch o", "agent", "inferred")]


def test_strict_import_imports_nothing_when_a_line_is_bad(tmp_path: Path, mem: Memory) -> None:
    src = write_lines(tmp_path / "in.jsonl", [json.dumps({"content": "fine"}), "{broken"])
    r = run("import", str(src), "--strict")
    assert r.exit_code == 1
    assert "line 2: not JSON" in r.stderr and "nothing was imported" in r.stderr
    assert mem.stats().total == 0


def test_import_goes_through_ingest_in_batches_of_256(
    tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = Memory.ingest

    def recording(self: Memory, items: Sequence[MemoryIn], **kw: Any) -> IngestReport:
        sizes.append(len(items))
        return real(self, items, **kw)

    monkeypatch.setattr(Memory, "ingest", recording)
    src = write_lines(tmp_path / "many.jsonl", [json.dumps({"content": f"Fact number {i} is true."}) for i in range(600)])
    summary = as_json("import", str(src))
    assert sizes == [IMPORT_BATCH, IMPORT_BATCH, 600 - 2 * IMPORT_BATCH]
    assert summary == {"imported": 600, "skipped": 0, "unembedded": 0, "flagged": 0}
    assert mem.stats().active == 600


def test_import_of_a_missing_file_exits_1() -> None:
    r = run("import", "nope.jsonl")
    assert r.exit_code == 1 and "no file nope.jsonl" in r.stderr


def test_export_then_import_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add("Alice prefers short answers.", "--type", "preference", "--user-stated")
    add("The sale ends soon.", "--expires-in", "2w")
    old = add("The office is in Leeds.")
    run("correct", str(old), "The office is in York.")
    stdout = run("export").stdout
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [r["content"] for r in rows] == ["Alice prefers short answers.", "The sale ends soon.", "The office is in York."]
    target = tmp_path / "backup.jsonl"
    r = run("export", "--out", str(target))
    assert r.exit_code == 0 and f"exported 3 memories to {target}" in r.stderr
    assert target.read_text(encoding="utf-8") == stdout

    monkeypatch.setenv("COLONY_HOME", str(tmp_path / "other-node"))
    assert as_json("import", str(target))["imported"] == 3
    again = [json.loads(line) for line in run("export").stdout.splitlines()]
    keep = ("content", "memory_type", "verified", "confidence", "sensitivity", "expires_at", "source_kind")
    assert [{k: r[k] for k in keep} for r in again] == [{k: r[k] for k in keep} for r in rows]


def test_a_database_that_cannot_be_opened_exits_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "broken-home"
    (home / "colony.db").mkdir(parents=True)  # a directory where the database file should be
    monkeypatch.setenv("COLONY_HOME", str(home))
    r = run("stats")
    assert r.exit_code == 4 and "error:" in r.stderr
