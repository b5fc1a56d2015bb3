"""Verification: run a solution against a problem's hidden tests in the sandbox — pass or fail.

The verdict must be something the solution cannot forge, so the solution and the tests never
share a process. Two process-tier sandboxes run side by side, joined only by a pair of pipes:

- the **solution's sandbox** runs the solution under the guard and then lends its entry point to
  the other side (`colony.bench._wire`); it holds no tests, no verdict and no secret, so there is
  nothing in its memory, its stdin, its output, its frames or its audit events to learn or forge.
  (Frame introspection is therefore allowed: refusing it only flagged honest code such as
  ``namedtuple``, which reads its caller's frame.)
- the **tests' sandbox** is a fresh interpreter that nothing of the solution has touched: pristine
  builtins and standard library, the problem's own helpers taken from the *prompt* (not from the
  solution, which may redefine them), and the hidden tests. It calls the solution through a proxy;
  results arrive as plain data decoded by its own interpreter, so they are compared by value, never
  with an answer object's own ``__eq__``;
- the verdict is written by the tests' process on a descriptor of its own that the host reads.
  The solution's sandbox has no path to it: another PID, mount, IPC and network namespace, and
  (when Colony runs as root) another uid.

The outcome is ``pass`` only when the tests' process says so; ``tamper`` when the guard refused an
operation in the solution's sandbox (heap scans, processes, sockets, native code) — it wins over
any verdict; ``fail`` otherwise, with the reason. The harness runs in the process tier
only (it needs two sandboxes and a pipe between them); without bubblewrap there is no benchmark.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from colony.bench._wire import AGENT_SOURCE, TESTER_SOURCE
from colony.bench.problems import Problem
from colony.sandbox import Limits, SandboxResult, run_process, run_python, sandbox_python

__all__ = ["HARNESS_LIMITS", "Verdict", "verify", "verify_many"]

HARNESS_LIMITS = Limits(timeout_s=15, cpu_s=10, memory_bytes=1 << 30, max_processes=8, max_output_bytes=64 << 10)

Outcome = Literal["pass", "fail", "tamper", "error"]


class Verdict(BaseModel):
    problem_id: str
    tier: int
    outcome: Outcome
    detail: str = ""
    stop: str = "ok"
    wall_ms: float = 0.0

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def verify(problem: Problem, solution: str, *, limits: Limits = HARNESS_LIMITS,
           colony_home: Path | None = None) -> Verdict:
    """Run ``solution`` against ``problem``'s hidden tests, each in its own sandbox."""
    calls_r, calls_w = os.pipe()      # tests -> solution
    answers_r, answers_w = os.pipe()  # solution -> tests
    verdict_r, verdict_w = os.pipe()  # tests -> host
    agent = "SOLUTION = " + repr(solution) + "\nENTRY = " + repr(problem.entry_point) + "\n" + AGENT_SOURCE
    payload = json.dumps({"tests": problem.tests, "prompt": problem.prompt, "entry_point": problem.entry_point})
    runs: dict[str, SandboxResult] = {}
    errors: list[BaseException] = []

    def run(name: str, fn: Callable[[], SandboxResult]) -> None:
        try:
            runs[name] = fn()
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    started = time.perf_counter()
    threads = [
        threading.Thread(target=run, args=("solution", lambda: run_python(
            agent, limits=limits, tier="process", colony_home=colony_home,
            fds={3: calls_r, 4: answers_w}))),
        threading.Thread(target=run, args=("tests", lambda: run_process(
            [sandbox_python(), "-I", "-S", "-c", TESTER_SOURCE], stdin=payload.encode(), limits=limits,
            colony_home=colony_home, fds={3: calls_w, 4: answers_r, 5: verdict_w}))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        said = os.read(verdict_r, 65536)
    finally:
        os.close(verdict_r)
    if errors:
        raise errors[0]
    wall_ms = round((time.perf_counter() - started) * 1000, 2)
    return _judge(problem, runs["solution"], runs["tests"], said, wall_ms)


def _judge(problem: Problem, solution: SandboxResult, tests: SandboxResult, said: bytes, wall_ms: float) -> Verdict:
    def make(outcome: Outcome, detail: str) -> Verdict:
        return Verdict(problem_id=problem.id, tier=problem.tier, stop=solution.stop, wall_ms=wall_ms,
                       outcome=outcome, detail=detail)

    if solution.stop == "denied":
        return make("tamper", f"refused by the sandbox: {solution.detail}")
    try:
        verdict = json.loads(said) if said else {}
        word, detail = str(verdict["verdict"]), str(verdict.get("detail", ""))
    except (ValueError, KeyError, TypeError):
        word, detail = "", ""
    if solution.stop in ("timeout", "out_of_memory", "out_of_fuel"):
        return make("fail", f"{solution.stop}: {solution.detail}")
    if word == "PASS":
        return make("pass", "")
    if word == "FAIL":
        return make("fail", detail)
    if tests.stop in ("timeout", "out_of_memory"):
        return make("fail", f"{tests.stop} while testing: {tests.detail}")
    return make("error", f"the tests' sandbox gave no verdict ({tests.stop}: {tests.detail})")


def verify_many(
    items: Sequence[tuple[Problem, str]], *, workers: int = 2, colony_home: Path | None = None,
    on_verdict: Callable[[Verdict], None] | None = None,
) -> list[Verdict]:
    """Verify many (problem, solution) pairs, ``workers`` sandboxes at a time, in input order."""
    def one(item: tuple[Problem, str]) -> Verdict:
        verdict = verify(item[0], item[1], colony_home=colony_home)
        if on_verdict is not None:
            on_verdict(verdict)
        return verdict

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, items))
