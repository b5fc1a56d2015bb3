"""The data directory as a person meets it: owner-only files, an unusable COLONY_HOME, an emptied
database next to an earlier node's traces, and `colony doctor` on a database with damaged pages."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import apsw
import pytest
from typer.testing import CliRunner

from colony.cli import app as cli_app
from colony.cli._common import ExitCode
from colony.config import Settings
from colony.errors import DataDirectoryError, StoreError
from colony.llm.messages import UserMessage
from colony.node import Node
from colony.store import MIGRATIONS, Database, migrate, open_database
from colony.store.sqlite_records import SqliteRecordStore

COLONY = [sys.executable, "-m", "colony"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run(args: list[str], home: Path, cwd: Path | None = None, prefix: list[str] | None = None,
        ) -> subprocess.Popen[str]:
    env = dict(os.environ, COLONY_HOME=str(home), COLUMNS="200")
    # stdin is a pipe, as an editor gives `colony acp` (an event loop cannot watch /dev/null).
    return subprocess.Popen([*(prefix or []), *COLONY, *args], env=env, cwd=cwd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- owner-only files --------------------------------------------------------------------------------


async def test_a_new_node_keeps_its_directory_and_database_files_owner_only(settings: Settings) -> None:
    node = Node(settings)
    try:
        node.records.create_session()  # a write: the -wal and -shm files exist now
        home = settings.home
        assert mode(home) == 0o700
        for name in ("colony.db", "colony.db-wal", "colony.db-shm", "colony.db.lock"):
            assert (home / name).exists(), name
            assert mode(home / name) == 0o600, name
    finally:
        await node.aclose()
    r = CliRunner().invoke(cli_app, ["token"])
    assert r.exit_code == 0 and mode(settings.home / "token") == 0o600


def test_an_existing_node_left_readable_by_others_is_tightened_on_open_with_a_note(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    home = settings.home
    db = open_database(settings.db_path)
    SqliteRecordStore(db).create_session()
    keep_wal = open_database(settings.db_path)  # a second connection keeps -wal and -shm on disk
    keep_wal.scalar("SELECT COUNT(*) FROM sessions")
    db.close()
    (home / "token").write_text("t0k3n\n")
    loose = ["colony.db", "colony.db-wal", "colony.db-shm", "token"]
    for name in loose:
        os.chmod(home / name, 0o644)
    os.chmod(home, 0o755)
    with caplog.at_level(logging.WARNING, logger="colony.store"):
        again = open_database(settings.db_path)
    try:
        assert mode(home) == 0o700
        for name in loose:
            assert mode(home / name) == 0o600, name
        notes = [r.getMessage() for r in caplog.records if r.name == "colony.store"]
        for name in ("colony.db", "colony.db-wal", "token"):
            assert any(str(home / name) in n and "0644 to 0600" in n for n in notes), (name, notes)
        assert again.scalar("SELECT COUNT(*) FROM sessions") == 1  # nothing lost on the way
    finally:
        again.close()
        keep_wal.close()


# -- a COLONY_HOME that cannot be used ---------------------------------------------------------------


def _bad_homes(tmp_path: Path) -> dict[str, Path]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    readonly = tmp_path / "read-only"
    readonly.mkdir()
    os.chmod(readonly, 0o555)
    return {
        "under a file": blocker / "home",  # NotADirectoryError
        "is a file": blocker,  # FileExistsError
        "parent not writable": readonly / "home",  # PermissionError
    }


def _unprivileged() -> list[str]:
    """Run as a user the permission bits apply to: root keeps uid 0 but loses the overrides."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to test a COLONY_HOME root may not write")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def _assert_clear_refusal(code: int, stderr: str, home: Path) -> None:
    assert code == ExitCode.STORE, stderr
    assert "Traceback" not in stderr, stderr
    assert f"Cannot use {home} as the data directory (COLONY_HOME)" in stderr
    assert "Set COLONY_HOME to a folder this user can write" in stderr


@pytest.mark.parametrize(
    "command", [["chat", "hi"], ["autonomy", "--once"], ["up", "--port", "0"], ["acp"], ["mcp", "serve"]],
)
def test_the_node_commands_refuse_an_unusable_home_with_one_message_and_exit_4(
    tmp_path: Path, command: list[str],
) -> None:
    homes = _bad_homes(tmp_path)
    procs = {
        kind: run(command, home, cwd=tmp_path, prefix=_unprivileged() if kind == "parent not writable" else None)
        for kind, home in homes.items()
    }
    finished = {kind: (proc.communicate(timeout=60)[1], proc.returncode) for kind, proc in procs.items()}
    for kind, (stderr, code) in finished.items():
        _assert_clear_refusal(code, stderr, homes[kind])
    assert (tmp_path / "a-file").read_text() == "not a directory"  # nothing written over it
    assert not (tmp_path / "read-only" / "home").exists()


@pytest.mark.parametrize(
    "command",
    [["history"], ["tasks", "list"], ["memory", "stats"], ["token"], ["backup"], ["restore", "x.db"],
     ["mcp", "list"], ["cognition", "status"], ["eval", "list"],
     ["cartridge", "list"], ["bench", "runs"]],
)
@pytest.mark.parametrize("kind", ["under a file", "is a file"])
def test_every_command_that_opens_the_node_gives_the_same_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], kind: str,
) -> None:
    home = _bad_homes(tmp_path)[kind]
    monkeypatch.setenv("COLONY_HOME", str(home))
    (tmp_path / "x.db").write_text("")  # restore's argument exists: only the home is wrong
    r = CliRunner().invoke(cli_app, command)
    _assert_clear_refusal(r.exit_code, r.stderr, home)


def test_doctor_reports_an_unusable_home_in_its_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _bad_homes(tmp_path)["under a file"]
    monkeypatch.setenv("COLONY_HOME", str(home))
    r = CliRunner().invoke(cli_app, ["doctor", "--json"])
    assert r.exit_code == ExitCode.FAILED
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["data directory"]["status"] == "fail"
    assert "a part of that path is a file" in checks["data directory"]["detail"]


def test_the_store_raises_a_data_directory_error_that_names_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataDirectoryError, match="Set COLONY_HOME") as info:
        open_database(blocker / "home" / "colony.db")
    assert isinstance(info.value, StoreError) and info.value.path == str(blocker / "home")


# -- an emptied database ------------------------------------------------------------------------------


def _emptied_node(home: Path) -> None:
    """A node that ran (token, cache) whose colony.db was then truncated to 0 bytes."""
    home.mkdir(parents=True)
    (home / "token").write_text("t0k3n\n")
    (home / "cache").mkdir()
    (home / "colony.db").write_bytes(b"")


def test_an_empty_database_where_a_node_had_data_is_reported_loudly(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    _emptied_node(settings.home)
    db_file = settings.db_path

    doctor = CliRunner().invoke(cli_app, ["doctor", "--json"])
    assert doctor.exit_code == ExitCode.FAILED
    database = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "database")
    assert database["status"] == "fail" and "EMPTY (0 bytes)" in database["detail"]
    assert "token" in database["detail"] and "colony restore" in database["detail"]
    assert db_file.stat().st_size == 0  # doctor did not initialise it

    listed = CliRunner().invoke(cli_app, ["tasks", "list"])
    assert listed.exit_code == 0
    assert "warning:" in listed.stderr and "EMPTY (0 bytes)" in listed.stderr and "colony restore" in listed.stderr

    db_file.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="colony.store"):
        db = open_database(db_file)
    try:
        assert db.found_empty == ["token", "cache/"]
        assert any("EMPTY (0 bytes)" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    finally:
        db.close()


def test_a_new_node_and_a_node_with_data_are_not_warned_about(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="colony.store"):
        db = open_database(settings.db_path)  # a brand-new node: nothing there before
        SqliteRecordStore(db).create_session()
        db.close()
        (settings.home / "token").write_text("t\n")
        db = open_database(settings.db_path)  # a node with its data
        db.close()
    assert not [r for r in caplog.records if "EMPTY" in r.getMessage()]


# -- colony doctor on damaged pages --------------------------------------------------------------------


def _node_with_damaged_pages(db_file: Path) -> None:
    """A real colony.db (current schema, 300 messages), then garbage over the messages' leaf pages.

    Opening and migrating it still work (they never read those pages); reading them does not.
    """
    db = open_database(db_file)
    records = SqliteRecordStore(db)
    sid = records.create_session()
    with db.tx():
        for i in range(300):
            records.add_message(sid, None, UserMessage(content=f"message {i} " * 20))
    db.close()
    conn = apsw.Connection(str(db_file))
    pages = [int(r[0]) for r in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' ORDER BY pageno")]
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])  # type: ignore[index]
    conn.close()
    assert len(pages) > 4
    with open(db_file, "r+b") as fh:
        for page in pages[1:4]:
            fh.seek((page - 1) * page_size)
            fh.write(os.urandom(page_size))


def test_doctor_reports_damaged_pages_instead_of_crashing(settings: Settings) -> None:
    _node_with_damaged_pages(settings.db_path)
    before = settings.db_path.read_bytes()
    r = CliRunner().invoke(cli_app, ["doctor", "--json"])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code == ExitCode.FAILED
    report = json.loads(r.stdout)
    database = next(c for c in report["checks"] if c["name"] == "database")
    assert report["healthy"] is False and database["status"] == "fail"
    assert "damaged" in database["detail"] and "colony restore PATH" in database["detail"]
    assert settings.db_path.read_bytes() == before  # reported, not repaired or rewritten


def test_doctor_on_damaged_pages_as_a_person_runs_it(settings: Settings) -> None:
    _node_with_damaged_pages(settings.db_path)
    proc = run(["doctor"], settings.home)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.FAILED
    assert "Traceback" not in stderr, stderr
    assert "damaged" in stdout and "colony restore" in stdout


def test_a_damaged_database_that_needs_migrating_is_a_store_error_with_the_way_back(settings: Settings) -> None:
    """An older node's database with a damaged page where the upgrade writes: a message, not a traceback."""
    older = Database(settings.db_path)
    migrate(older, MIGRATIONS[:-1])
    older.close()
    conn = apsw.Connection(str(settings.db_path))
    [page] = [int(r[0]) for r in conn.execute("SELECT pageno FROM dbstat WHERE name = 'schema_migrations'")]
    conn.close()
    with open(settings.db_path, "r+b") as fh:
        fh.seek((page - 1) * 4096)
        fh.write(b"\xa5" * 4096)
    with pytest.raises(StoreError, match="colony restore PATH"):
        open_database(settings.db_path)
    r = CliRunner().invoke(cli_app, ["history"])
    assert r.exit_code == ExitCode.STORE and "damaged" in r.stderr
    assert not isinstance(r.exception, apsw.Error)
