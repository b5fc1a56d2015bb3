"""Governance and stake under real processes on one node's database: two processes executing the
same due proposals at the same moment execute each exactly once, and two processes applying the
same slash move the credits once. Workers come from a forkserver, as in the ledger's process tests.
Both run on both engines (`engine`): the node's SQLite file, and PostgreSQL, where the proposal's
and the agent's named locks serialise the two processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
from gov_helpers import DAY, T0, ledger_of, node_keyring, staked_agents

from colony.config import Settings
from colony.identity import Keyring
from colony.ledger import MICRO
from colony.market import gov_service as gov
from colony.market import stakes
from colony.market.governance import SetMarketParam, SetToolTier
from colony.market.stakes import market_db
from colony.store import open_database
from colony.store.pg.shared import close_shared

CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["colony.market.gov_service", "colony.store", __name__])


@pytest.fixture(autouse=True)
def _on_engine(engine: str) -> Iterator[None]:
    """Every test on both engines; this process's PostgreSQL pools closed after it."""
    yield
    close_shared()


def _env() -> dict[str, str]:
    """What a worker needs to open this test's node: its home, key passphrase folder and test KDF."""
    return {k: v for k, v in os.environ.items() if k.startswith("COLONY_") or k == "XDG_CONFIG_HOME"}


def _in_worker(env: dict[str, str], start_at: float, out: str, work: Callable[[Keyring], Any]) -> None:
    for key in [k for k in os.environ if k.startswith("COLONY_")]:
        del os.environ[key]
    os.environ.update(env)
    settings = Settings()
    db = open_database(settings.db_path)
    try:
        keyring = Keyring(db, settings)
        keyring.node()  # unlock the keys before the race, not during it
        keyring.schnorr_key("ada")
        market_db(keyring)  # connected (and migrated) before the race, not during it
        time.sleep(max(0.0, start_at - time.time()))
        Path(out).write_text(json.dumps(work(keyring)))
    finally:
        close_shared()
        db.close()


def _execute(keyring: Keyring) -> list[str]:
    return [d.proposal_id for d in gov.execute_due(keyring, now=T0 + 2 * DAY + 10, actor=f"pid-{os.getpid()}")]


def _slash(keyring: Keyring) -> int:
    return stakes.slash(keyring, "ada", 10 * MICRO, reason="raced", ref="auction:race")


def _race(tmp_path: Path, work: Callable[[Keyring], Any]) -> list[Any]:
    start_at = time.time() + 1.5
    outs = [tmp_path / f"out-{i}.json" for i in range(2)]
    procs: list[BaseProcess] = [CTX.Process(target=_in_worker, args=(_env(), start_at, str(o), work), daemon=True)
                                for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return [json.loads(o.read_text()) for o in outs]


def test_two_processes_execute_the_same_due_proposals_once(tmp_path: Path) -> None:
    settings = Settings()
    actions = [SetToolTier(agent="bob", tool="save_note", tier="allow"),
               SetToolTier(agent="bob", tool="run_command", tier="ask"),
               SetMarketParam(name="slash_failed_bp", value=7_500)]
    with node_keyring(settings) as kr:
        staked_agents(kr, {"ada": 10 * MICRO, "bob": 0}, funds=20 * MICRO)
        ids = []
        for i, action in enumerate(actions):
            p = gov.propose(kr, action, by="ada", now=T0 + i)
            gov.vote(kr, p.id, "ada", "yes", now=T0 + i + 1)
            ids.append(p.id)

    first, second = _race(tmp_path, _execute)
    assert sorted(first + second) == sorted(ids) and not set(first) & set(second)
    with node_keyring(settings) as kr:
        db = market_db(kr)
        assert db.scalar("SELECT count(*) FROM gov_executions") == 3
        assert db.scalar("SELECT count(*) FROM gov_log WHERE action = 'executed'") == 3
        assert gov.agent_tool_tier(db, kr.db, "bob", "save_note") == "allow"
        assert gov.agent_tool_tier(db, kr.db, "bob", "run_command") == "ask"
        assert gov.current_market_params(db).slash_failed_bp == 7_500
        assert [gov.get_proposal(kr, i, now=T0 + 2 * DAY + 10).status for i in ids] == ["executed"] * 3
        if settings.database_url is not None:  # all of it on PostgreSQL, nothing in the node's file
            assert kr.db.scalar("SELECT count(*) FROM gov_executions") == 0
            assert kr.db.scalar("SELECT count(*) FROM market_stake_holds") == 0


def test_two_processes_applying_one_slash_move_the_credits_once(tmp_path: Path) -> None:
    settings = Settings()
    with node_keyring(settings) as kr:
        staked_agents(kr, {"ada": 30 * MICRO}, funds=40 * MICRO)
        treasury = stakes.treasury(kr).public_hex  # made before the race, as a node does at its first slash

    assert _race(tmp_path, _slash) == [10 * MICRO, 10 * MICRO]  # both answer the one slash
    with node_keyring(settings) as kr:
        assert stakes.staked(kr, "ada") == 20 * MICRO
        assert ledger_of(kr).balance(treasury).balance == 10 * MICRO
        assert market_db(kr).scalar("SELECT count(*) FROM market_stake_events WHERE op = 'slash'") == 1
        assert ledger_of(kr).verify().ok
