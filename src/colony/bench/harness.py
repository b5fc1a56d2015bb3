"""Verification: run a solution against a problem's hidden tests in the sandbox — pass or fail.

The run happens in the process tier (native speed; HumanEval has slow tests) under the strict
guard, in this order inside one sandboxed interpreter:

1. the harness reads the hidden tests and a fresh nonce from stdin, then closes stdin;
2. it snapshots ``builtins``;
3. it executes the solution (the guard already refuses frame access, ``gc`` walks, processes,
   sockets and native code, so the solution cannot reach the tests held in the harness's locals);
4. it executes the tests in a copy of the solution's namespace with the *saved* builtins and calls
   ``check(entry_point)``;
5. it reports ``<nonce> PASS`` only if nothing raised and no builtin was replaced.

A solution that exits early, prints a fake verdict (it cannot know the nonce), patches a builtin
the tests use, or tries to introspect its way to the tests is caught: the verdict is ``tamper``
when the guard or the builtins check saw it, ``fail`` otherwise.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from colony.bench.problems import Problem
from colony.sandbox import Limits, run_python

__all__ = ["HARNESS_LIMITS", "Verdict", "verify", "verify_many"]

HARNESS_LIMITS = Limits(timeout_s=15, cpu_s=10, memory_bytes=1 << 30, max_processes=8, max_output_bytes=64 << 10)

Outcome = Literal["pass", "fail", "tamper", "error"]

_HARNESS = r'''
def __colony_harness(solution_src):
    import builtins, json, os, sys
    payload = json.loads(sys.stdin.read())
    sys.stdin.close()
    os.close(0)
    nonce, tests, entry = payload["nonce"], payload["tests"], payload["entry_point"]
    saved = dict(builtins.__dict__)
    write = sys.__stdout__.write

    def verdict(word, detail=""):
        write("\n" + nonce + " " + word + " " + json.dumps(detail[:500]) + "\n")
        sys.__stdout__.flush()

    def tampered():
        changed = sorted(k for k, v in saved.items() if builtins.__dict__.get(k) is not v)
        if changed:
            verdict("TAMPER", "replaced builtins: " + ", ".join(changed))
        return bool(changed)

    try:
        ns = {"__name__": "solution", "__builtins__": builtins}
        exec(compile(solution_src, "<solution>", "exec"), ns)
        if tampered():
            return
        if entry not in ns:
            verdict("FAIL", "the solution does not define " + entry)
            return
        env = dict(ns)
        env["__builtins__"] = dict(saved)
        exec(compile(tests, "<tests>", "exec"), env)
        env["check"](ns[entry])
    except BaseException as exc:  # the verdict is the point; the exception is reported, not re-raised
        if not tampered():
            verdict("FAIL", type(exc).__name__ + ": " + str(exc))
        return
    if not tampered():
        verdict("PASS")
__colony_harness(SOLUTION)
'''


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
    """Run ``solution`` against ``problem``'s hidden tests in the sandbox."""
    nonce = secrets.token_hex(16)
    program = "SOLUTION = " + repr(solution) + "\n" + _HARNESS
    payload = json.dumps({"nonce": nonce, "tests": problem.tests, "entry_point": problem.entry_point}).encode()
    started = time.perf_counter()
    result = run_python(program, stdin=payload, limits=limits, tier="process", strict_frames=True,
                        colony_home=colony_home)
    wall_ms = round((time.perf_counter() - started) * 1000, 2)

    def make(outcome: Outcome, detail: str) -> Verdict:
        return Verdict(problem_id=problem.id, tier=problem.tier, stop=result.stop, wall_ms=wall_ms,
                       outcome=outcome, detail=detail)

    if result.stop == "denied":
        return make("tamper", f"refused by the sandbox: {result.detail}")
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(nonce + " "):
            word, _, detail = line[len(nonce) + 1:].partition(" ")
            text = json.loads(detail) if detail else ""
            outcome: Outcome = {"PASS": "pass", "TAMPER": "tamper"}.get(word, "fail")  # type: ignore[assignment]
            if outcome == "pass" and result.stop != "ok":
                outcome, text = "fail", f"{result.stop}: {result.detail}"
            return make(outcome, text)
    detail = result.detail or "no verdict (the program exited before the tests ran)"
    if result.stop in ("timeout", "out_of_memory"):
        detail = f"{result.stop}: {result.detail}"
    return make("fail", detail)


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
