"""The market's tests on either engine: a test that takes `engine` runs once with the node's
market, ledger and task queue in its SQLite file and once on PostgreSQL (the suite's private
server, through ``COLONY_DATABASE_URL``, which the test's subprocesses inherit)."""

from __future__ import annotations

import pytest

#: Where a parametrised test keeps the node's market, ledger and tasks.
ENGINES = ("sqlite", "postgres")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``sqlite`` or ``postgres``; for ``postgres`` the environment names a new, empty database."""
    name = str(request.param)
    if name == "postgres":
        monkeypatch.setenv("COLONY_DATABASE_URL", request.getfixturevalue("pg_url"))
    return name
