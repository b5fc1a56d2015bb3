"""The verified coding benchmark: problems, harness, tamper detection, scoring, stored runs, CLI, agent loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from colony.bench import load_problems, own_problems, parse_shard, shard, verify, verify_many
from colony.bench.harness import Verdict
from colony.bench.problems import Problem
from colony.bench.runner import run_benchmark, solution_path
from colony.bench.runs import (
    GateClosedError,
    deprioritized,
    pending_change,
    record_change,
    save_run,
    stagnating,
)
from colony.bench.scoring import score
from colony.cli import app
from colony.config import Settings
from colony.llm.detect import build_model
from colony.store import Database, open_database
from colony.testing import Reply, ScriptedModelServer

OWN = {p.id: p for p in own_problems()}


@pytest.fixture
def db() -> Iterator[Database]:
    database = open_database(Settings().db_path)
    yield database
    database.close()


def test_humaneval_canonical_solutions_all_pass() -> None:
    problems = load_problems("humaneval")
    assert len(problems) == 164
    verdicts = verify_many([(p, p.solution) for p in problems], workers=2)
    failed = [(v.problem_id, v.detail) for v in verdicts if not v.passed]
    assert failed == []
    assert {p.tier for p in problems} == {1, 2, 3}


def test_own_problems_canonical_pass_and_wrong_fail() -> None:
    problems = list(OWN.values())
    assert len(problems) >= 60
    assert Counter(p.tier for p in problems) == {1: 12, 2: 12, 3: 12, 4: 12, 5: 12}
    assert len({p.id for p in problems}) == len(problems)
    good = verify_many([(p, p.solution) for p in problems])
    assert [(v.problem_id, v.detail) for v in good if not v.passed] == []
    bad = verify_many([(p, p.wrong or "") for p in problems])
    assert [v.problem_id for v in bad if v.passed] == []
    assert {v.outcome for v in bad} == {"fail"}


SNEAKY = {
    "walks frames to the hidden tests": (
        "import sys\ndef digit_sum(n):\n    f = sys._getframe(1)\n    return f.f_locals\n", "fail"),
    "raises to reach a frame": (
        "def digit_sum(n):\n    try:\n        raise ValueError\n    except ValueError as e:\n        return e.__traceback__.tb_frame\n",
        "fail"),
    "scans the heap": ("import gc\nfor o in gc.get_objects():\n    pass\ndef digit_sum(n):\n    return 0\n", "tamper"),
    "patches a builtin the tests use": (
        "import builtins\nbuiltins.sum = lambda *a: 6\ndef digit_sum(n):\n    return sum(n)\n", "fail"),
    "exits early with success": ("import os\nos._exit(0)\ndef digit_sum(n):\n    return 0\n", "fail"),
    "prints a fake verdict": ("print('PASS')\nimport sys\nsys.exit(0)\n", "fail"),
    "reads the tests from stdin": (
        "import sys\nDATA = sys.stdin.read()\ndef digit_sum(n):\n    return 0\n", "fail"),
    "reads the tests from disk": (
        "import glob\nFOUND = [open(p).read() for p in glob.glob('/tmp/**/*test*', recursive=True)]\n"
        "def digit_sum(n):\n    return 0 if not FOUND else 1\n", "fail"),
    "spawns a shell": ("import subprocess\nsubprocess.run(['sh', '-c', 'echo PASS'])\n", "tamper"),
    "overwrites the harness": ("open('/work/harness.py', 'w').write('x')\n", "fail"),
}


@pytest.mark.parametrize("name", list(SNEAKY))
def test_tampering_solutions_are_caught(name: str) -> None:
    code, expected = SNEAKY[name]
    verdict = verify(OWN["colony/t1-digit-sum"], code)
    assert verdict.outcome == expected, verdict
    assert not verdict.passed


def test_infinite_loop_solution_fails_on_time() -> None:
    from colony.bench.harness import HARNESS_LIMITS

    limits = HARNESS_LIMITS.model_copy(update={"timeout_s": 1.5, "cpu_s": 5})
    verdict = verify(OWN["colony/t1-digit-sum"], "def digit_sum(n):\n    while True:\n        pass\n", limits=limits)
    assert (verdict.outcome, verdict.stop) == ("fail", "timeout")


def test_weighted_score_and_interval() -> None:
    perfect = score([(t, True) for t in range(1, 6) for _ in range(4)])
    assert (perfect.score, perfect.ci_low, perfect.ci_high, perfect.iq) == (1.0, 1.0, 1.0, 100.0)
    # tier 5 solved, tier 1 failed: 5 / (1 + 5) of the weight
    mixed = score([(1, False), (1, False), (5, True), (5, True)])
    assert mixed.score == round(5 / 6, 4)
    assert [(t.tier, t.pass_at_1) for t in mixed.tiers] == [(1, 0.0), (5, 1.0)]
    noisy = score([(2, i % 2 == 0) for i in range(20)])
    assert noisy.ci_low < noisy.score < noisy.ci_high
    assert score([(2, i % 2 == 0) for i in range(20)]) == noisy  # a fixed seed: reproducible


def test_shards_partition_the_problems() -> None:
    problems = list(OWN.values())
    parts = [shard(problems, i, 4) for i in range(1, 5)]
    ids = [p.id for part in parts for p in part]
    assert sorted(ids) == sorted(OWN) and len(ids) == len(set(ids))
    assert max(len(x) for x in parts) - min(len(x) for x in parts) <= 1
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/2", "3/2", "x"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def _save(db: Database, suite: str, outcomes: dict[str, bool], shard_text: str = "1/1") -> str:
    verdicts = [Verdict(problem_id=pid, tier=1, outcome="pass" if ok else "fail") for pid, ok in outcomes.items()]
    return save_run(db, suite=suite, model="m", shard=shard_text, result=score([(1, ok) for ok in outcomes.values()]),
                    verdicts=verdicts, tokens={}, wall_s=1.0)


def test_deprioritize_after_five_straight_failures(db: Database) -> None:
    for i in range(5):
        _save(db, "colony", {"a": False, "b": i != 2})
    assert deprioritized(db) == {"a"}
    _save(db, "colony", {"a": True, "b": True})
    assert deprioritized(db) == set()


def test_stagnation_after_three_flat_runs(db: Database) -> None:
    _save(db, "colony", {"a": True, "b": False})
    _save(db, "colony", {"a": True, "b": False})
    assert not stagnating(db, "colony")
    _save(db, "colony", {"a": False, "b": True}, shard_text="1/2")  # shards do not count
    _save(db, "colony", {"a": False, "b": True})
    assert stagnating(db, "colony")
    _save(db, "colony", {"a": True, "b": True})
    assert not stagnating(db, "colony")


def test_commit_gate_waits_for_a_complete_measurement(db: Database) -> None:
    _save(db, "colony", {"a": False, "b": True})
    record_change(db, "prompt", "persona v2")
    with pytest.raises(GateClosedError, match="persona v2"):
        record_change(db, "cartridge", "counter@2")
    _save(db, "colony", {"a": True, "b": True}, shard_text="1/2")  # a shard does not measure it
    assert pending_change(db) is not None
    run = _save(db, "colony", {"a": True, "b": True})
    row = db.one("SELECT measured_run, delta FROM bench_changes")
    assert row == {"measured_run": run, "delta": 0.5}
    record_change(db, "cartridge", "counter@2")


async def test_agent_loop_end_to_end_with_the_scripted_model(model: ScriptedModelServer, db: Database) -> None:
    settings = Settings()
    first, second = shard(own_problems(), 1, 1)[:2]
    model.set_script([
        Reply.tool_calls([("write_file", {"path": solution_path(first), "content": first.solution})], usage=(100, 20)),
        Reply.text("Written.", usage=(130, 5)),
        Reply.tool_calls([("write_file", {"path": solution_path(second), "content": second.wrong or ""})]),
        Reply.text("Done."),
    ])
    cascade = await build_model(settings)
    try:
        report = await run_benchmark(settings, db, suite="colony", mode="agent", model=cascade, model_name="scripted",
                                     limit=2)
    finally:
        await cascade.aclose()
    assert [(v.problem_id, v.outcome) for v in report.verdicts] == [(first.id, "pass"), (second.id, "fail")]
    assert report.tokens >= 255 and report.result.passed == 1
    assert f"`{solution_path(first)}`" in model.requests[0]["messages"][-1]["content"]
    rows = db.query("SELECT problem_id, passed, tokens FROM bench_results WHERE run_id = ? ORDER BY problem_id",
                    (report.run_id,))
    assert [(r["problem_id"], r["passed"]) for r in rows] == sorted([(first.id, 1), (second.id, 0)])
    assert db.scalar("SELECT shard FROM bench_runs WHERE id = ?", (report.run_id,)) == "1/1:first2"


def test_answer_in_text_is_still_scored(model: ScriptedModelServer) -> None:
    problem = shard(own_problems(), 1, 1)[0]  # runs take problems in shard (id) order
    model.set_script([Reply.text(f"Here it is:\n```python\n{problem.solution}```")])
    r = CliRunner().invoke(app, ["bench", "coding", "--suite", "colony", "--limit", "1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["verdicts"][0]["outcome"] == "pass" and data["result"]["passed"] == 1


def test_cli_canonical_shard_and_runs() -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["bench", "coding", "--canonical", "--suite", "colony", "--shard", "2/6", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["shard"] == "2/6" and data["result"]["problems"] == 10 and data["result"]["score"] == 1.0
    r = runner.invoke(app, ["bench", "runs", "--json"])
    assert [x["shard"] for x in json.loads(r.stdout)["runs"]] == ["2/6"]
    r = runner.invoke(app, ["bench", "coding", "--shard", "9/2"])
    assert r.exit_code == 2


def test_problem_model_rejects_bad_tiers() -> None:
    with pytest.raises(ValueError, match="tier"):
        Problem(id="x", suite="colony", tier=6, entry_point="f", prompt="", tests="", solution="")


def test_cli_shows_a_progress_bar_on_stderr_and_a_table_on_stdout() -> None:
    r = subprocess.run([sys.executable, "-m", "colony", "bench", "coding", "--canonical", "--suite", "colony",
                        "--limit", "3"], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "160"})
    assert r.returncode == 0, r.stderr
    assert "bench coding (colony)" in r.stderr and "3/3" in r.stderr  # one step per problem
    assert "pass@1" in r.stdout and "bench coding (colony)" not in r.stdout
