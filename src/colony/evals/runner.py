"""Running cases: each trial in a fresh node of its own, then checking its properties.

A trial gets a temporary data directory and workspace (with the case's files), the settings of
its condition, a policy gate that denies every approval request (so "respected the gate" is
observable) and the model under test. It runs the case's turns in one session through the real
node and loop -- the same wiring as production, substrate included when the condition turns it
on -- and records which tools ran, with what outcome, and the final answer.

`run_suite` stores the run and compares it with the stored baseline: a property that passed
in the baseline and fails now is a regression; more new failures than the tolerance flags the run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel

from colony.agent.events import ToolCallFinished
from colony.agent.loop import run_turn_collect
from colony.config import Settings
from colony.errors import ColonyError
from colony.evals import _store
from colony.evals.models import CallSeen, EvalCase, Observation
from colony.evals.properties import check, label
from colony.llm.model import Model
from colony.node import Node
from colony.store import Database
from colony.store.sessions import new_id
from colony.tools.approval import deny_all

__all__ = ["Regression", "RunReport", "TrialResult", "compare", "run_case", "run_suite", "suite_cases", "trial_settings"]

Progress = Callable[[str], None]


class TrialResult(BaseModel):
    case_id: str
    category: str
    trial: int
    checks: dict[str, tuple[bool, str]]
    observation: Observation


class Regression(BaseModel):
    baseline_id: str
    new_failures: list[str]
    fixed: list[str]
    regressed: bool


class RunReport(BaseModel):
    run_id: str
    model: str
    cases: int
    passed: int
    failed: int
    by_category: dict[str, tuple[int, int]]
    baseline: bool
    regression: Regression | None = None

    @property
    def pass_rate(self) -> float:
        total = self.passed + self.failed
        return self.passed / total if total else 0.0


def trial_settings(base: Settings, root: Path, case: EvalCase, overrides: dict[str, Any]) -> Settings:
    update: dict[str, Any] = {
        "home": root / "home", "workspace": root / "ws", "memory_embedder": "none",
        "tool_policy": {**base.tool_policy, **case.policy}, **overrides,
    }
    return base.model_copy(update=update)


def _write_files(workspace: Path, files: dict[str, str]) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts:
            raise ValueError(f"eval file {rel!r} must be a relative path inside the workspace")
        target = workspace.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


async def run_case(case: EvalCase, model: Model, base: Settings, overrides: dict[str, Any] | None = None) -> Observation:
    """One trial of one case in a throwaway node."""
    with tempfile.TemporaryDirectory(prefix="colony-eval-") as tmp:
        settings = trial_settings(base, Path(tmp), case, overrides or {})
        _write_files(settings.workspace, case.files)
        node = Node(settings, approver=deny_all)
        obs = Observation()
        try:
            agent = await node.agent(model)
            session_id: str | None = None
            for prompt in case.turns:
                fin, events = await run_turn_collect(agent, node.deps, prompt, session_id=session_id, surface="eval",
                                                     stream=False)
                session_id = fin.session_id
                for ev in events:
                    if isinstance(ev, ToolCallFinished):
                        effect = node.registry.get(ev.name).effect if ev.name in node.registry else None
                        obs.calls.append(CallSeen(name=ev.name, effect=effect, outcome=ev.outcome))
                obs.final_text, obs.status, obs.error = fin.text, fin.status, fin.error
        except ColonyError as exc:  # a case that cannot run fails its properties; the suite goes on
            obs.status, obs.error = "failed", str(exc)
        finally:
            await node.aclose()
        return obs


async def run_trial(case: EvalCase, model: Model, base: Settings, overrides: dict[str, Any], trial: int) -> TrialResult:
    obs = await run_case(case, model, base, overrides)
    return TrialResult(case_id=case.id, category=case.category, trial=trial,
                       checks={label(p): check(p, obs) for p in case.properties}, observation=obs)


async def run_suite(
    db: Database, model: Model, settings: Settings, cases: Sequence[EvalCase], *, run_label: str = "",
    trials: int = 1, overrides: dict[str, Any] | None = None, baseline: bool | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Run every case ``trials`` times, store the run, compare with the baseline.

    ``baseline``: True makes this run the baseline, False never does, None (default) makes it
    the baseline only when there is none yet.
    """
    previous = _store.baseline_run(db)
    rows: list[tuple[str, int, str, bool, str]] = []
    by_category: dict[str, list[int]] = {}
    for case in cases:
        for t in range(trials):
            result = await run_trial(case, model, settings, overrides or {}, t)
            tally = by_category.setdefault(case.category, [0, 0])
            for prop, (ok, detail) in result.checks.items():
                rows.append((case.id, t, prop, ok, detail))
                tally[0] += ok
                tally[1] += 1
            if progress is not None:
                progress(f"{case.id} #{t}: {sum(ok for ok, _ in result.checks.values())}/{len(result.checks)}")
    run_id = new_id("run")
    make_baseline = previous is None if baseline is None else baseline
    _store.insert_run(db, run_id=run_id, label=run_label, model=model.name, condition=overrides or {},
                      cases=len(cases), results=rows, baseline=make_baseline)
    passed = sum(1 for r in rows if r[3])
    report = RunReport(run_id=run_id, model=model.name, cases=len(cases), passed=passed, failed=len(rows) - passed,
                       by_category={k: (v[0], v[1]) for k, v in sorted(by_category.items())}, baseline=make_baseline)
    if previous is not None:
        report.regression = compare(db, str(previous["id"]), run_id, settings.eval_regression_tolerance)
    return report


def _failing(db: Database, run_id: str) -> tuple[set[str], set[str]]:
    """(keys seen, keys failing in any trial) for a run; a key is ``case_id:property``."""
    seen: set[str] = set()
    failing: set[str] = set()
    for r in _store.run_results(db, run_id):
        key = f"{r['case_id']}:{r['property']}"
        seen.add(key)
        if not r["passed"]:
            failing.add(key)
    return seen, failing


def compare(db: Database, baseline_id: str, run_id: str, tolerance: int) -> Regression:
    base_seen, base_fail = _failing(db, baseline_id)
    seen, fail = _failing(db, run_id)
    common = base_seen & seen
    new = sorted((fail - base_fail) & common)
    fixed = sorted((base_fail - fail) & common)
    return Regression(baseline_id=baseline_id, new_failures=new, fixed=fixed, regressed=len(new) - len(fixed) > tolerance)


def suite_cases(db: Database, *, category: str | None = None, ids: Sequence[str] = ()) -> list[EvalCase]:
    """The stored cases (the seed suite is written first, so a fresh node has it), filtered."""
    from colony.evals.seed import seed_suite

    _store.upsert_cases(db, seed_suite())
    cases = _store.list_cases(db, category=category)
    if ids:
        wanted = set(ids)
        cases = [c for c in cases if c.id in wanted]
    return cases
