"""Federated averaging measured: a small-data node predicts its own held-out calls better after
adopting the colony's average, and a node with plenty of data is not made materially worse.

The colony is the simulated one of `evals/federation/fedavg.py` (also `bench/bench_fedavg.py`);
the audit-log test runs the same round through real SQLite audit tables and `fit_audit`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from colony.cognition.predictor import StepPredictor
from colony.federation.learning import (
    LearningError,
    apply_canonical,
    fedavg,
    make_update,
    open_canonical,
    open_update,
    recheck,
    sign_learning,
)
from colony.identity.keys import SchnorrKey
from colony.store import open_database
from colony.store.audit import ToolCallRecord
from colony.store.sqlite_records import SqliteRecordStore

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `evals` lives next to `src`, not inside the installed package
    sys.path.insert(0, str(ROOT))

from evals.federation.fedavg import NodeResult, bootstrap_ci, measure, node_calls, world  # noqa: E402

SMALL, BIG = 3, 0
MATERIAL = 0.02  # two accuracy points: the most a data-rich node may plausibly lose


@pytest.fixture(scope="module")
def results() -> list[NodeResult]:
    return measure([3000, 2000, 1500, 40], heldout=200, seeds=range(12), noise=0.5)


def test_small_node_predicts_its_own_outcomes_better_after_averaging(results: list[NodeResult]) -> None:
    small = results[SMALL]
    assert small.train_samples == 40 and small.heldout == 12 * 200
    for mode in ("blend", "replace"):
        lo, hi = small.gain_ci[mode]
        assert lo > 0, f"{mode}: accuracy gain interval {lo:+.3f}..{hi:+.3f} does not exclude zero"
        assert small.loss_gain_ci[mode][0] > 0  # and its log-loss falls
        assert small.acc_after_ci[mode][0] > small.acc_before  # the Wilson interval clears the old accuracy


def test_data_rich_node_is_not_made_materially_worse(results: list[NodeResult]) -> None:
    big = results[BIG]
    assert big.train_samples == 3000
    for mode in ("blend", "replace"):
        assert big.gain_ci[mode][0] > -MATERIAL, f"{mode}: {big.gain_ci[mode]}"


def test_bootstrap_interval_covers_the_mean_and_can_exclude_zero() -> None:
    rng = np.random.default_rng(0)
    null = [rng.normal(0.0, 1.0, 100) for _ in range(8)]
    lo, hi = bootstrap_ci(null)
    assert lo < 0 < hi
    shifted = [d + 1.0 for d in null]
    assert bootstrap_ci(shifted)[0] > 0


def _write_audit(path: Path, seed: int, n: int) -> SqliteRecordStore:
    db = open_database(path)
    records = SqliteRecordStore(db)
    for i, c in enumerate(node_calls(world(5), seed, n, noise=0.5)):
        records.record_tool_call(ToolCallRecord(
            session_id=c.session, turn_id=None, call_id=f"c{i}", tool=c.tool, arguments={"x": "y" * c.arg_bytes},
            outcome="ok" if c.ok else "error", latency_ms=1.0, approval="allow"))
    return records


def test_a_round_through_real_audit_logs_and_signatures(tmp_path: Path) -> None:
    """Three nodes warm-start from their own SQLite audit logs, sign updates; the queen averages."""
    sizes = [900, 600, 30]
    keys = [SchnorrKey.generate() for _ in sizes]
    predictors = []
    for i, n in enumerate(sizes):
        p = StepPredictor()
        p.fit_audit(_write_audit(tmp_path / f"node{i}.db", 70 + i, n), limit=5000)
        assert p.samples_since_round == n
        predictors.append(p)
    events = [sign_learning(k, make_update(p), created_at=1_700_000_000) for k, p in zip(keys, predictors, strict=True)]
    pool = {e.pubkey: open_update(e, base_round=0) for e in events}
    canonical_event = sign_learning(keys[0], fedavg(pool, base_round=0), created_at=1_700_000_100)
    canonical = open_canonical(canonical_event, queens=frozenset({keys[0].public_hex}))
    assert recheck(canonical, pool)
    assert [c.samples for c in canonical.contributors] == [sizes[keys.index(k)] for k in
                                                           sorted(keys, key=lambda k: k.public_hex)]
    small = predictors[2]
    kept = apply_canonical(small, canonical)
    assert kept == pytest.approx(30 / sum(sizes))
    assert small.canonical_round == 1 and small.samples_since_round == 0
    with pytest.raises(LearningError, match="not newer"):  # the same canonical again is a replay
        apply_canonical(small, canonical)
