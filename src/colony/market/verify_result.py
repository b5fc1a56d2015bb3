"""Verification of a winner's result: the method the announcement named decides pay or refund.

Four methods (`colony.market.events.Verification`), each with what it needs (`VerifySpec`):

- ``tests``: the poster's ``check(candidate)`` tests and the ``entry_point`` they call, run
  against the code in the result by the coding benchmark's harness (`colony.bench.harness`): the
  solution and the tests in two sandboxes joined by a pipe, so the result cannot forge its verdict;
- ``benchmark``: a coding benchmark ``problem`` id; its hidden tests, the same harness;
- ``review``: a ``validator`` — another of the node's agents — reads the goal and the result in a
  turn without tools and must answer PASS or FAIL on its first line;
- ``approval``: a person decides (`colony market verdict`, ``POST …/verdict``); nothing runs.

The result is the task's final answer. Code is taken from its last fenced code block (the whole
answer when it has none), which is how agents hand in code in a chat answer.

A verdict that could not be reached (the sandbox missing, the validator's model down, an answer
that is neither PASS nor FAIL) raises `VerificationUnavailableError` and is tried again on the
next pass: a failure of the verifier is never charged to the worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from colony.identity.store import NAME_PATTERN
from colony.market.events import MarketError, Verification

if TYPE_CHECKING:
    from colony.bench.problems import Problem
    from colony.node import Node

__all__ = ["Verdict", "VerificationUnavailableError", "VerifySpec", "extract_code", "parse_review", "run_check"]

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)```", re.DOTALL)
REVIEW_PROMPT = (
    "You are verifying another agent's work for a paid task. Judge only whether the result achieves the goal.\n\n"
    "GOAL:\n{goal}\n\nRESULT:\n{result}\n\n"
    "Answer with PASS or FAIL on the first line, then one line saying why."
)


class VerificationUnavailableError(MarketError):
    """No verdict could be reached this time (sandbox, model or validator unavailable); try again later."""

    code = "verification_unavailable"


class VerifySpec(BaseModel):
    """What a verification method needs; fields the method does not use must be absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tests: str | None = Field(default=None, min_length=1, max_length=64_000,
                              description="tests: Python source defining check(candidate).")
    entry_point: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$",
                                    description="tests: the function the tests call.")
    problem: str | None = Field(default=None, min_length=1, max_length=200,
                                description="benchmark: a coding benchmark problem id, e.g. colony/t1-digit-sum.")
    validator: str | None = Field(default=None, pattern=NAME_PATTERN,
                                  description="review: the agent that reviews the result.")

    def check(self, method: Verification) -> VerifySpec:
        """Self, when it carries exactly what ``method`` needs; `MarketError` saying what is missing."""
        needs = {"tests": {"tests", "entry_point"}, "benchmark": {"problem"}, "review": {"validator"},
                 "approval": set()}[method]
        given = {k for k, v in self.model_dump().items() if v is not None}
        if given != needs:
            missing, extra = sorted(needs - given), sorted(given - needs)
            parts = ([f"needs {', '.join(missing)}"] if missing else []) + (
                [f"does not use {', '.join(extra)}"] if extra else [])
            raise MarketError(f"Verification by {method} {' and '.join(parts)}.")
        if method == "benchmark" and self.problem is not None:
            find_problem(self.problem)
        return self


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: str


def extract_code(result: str) -> str:
    """The last fenced code block of ``result``, or all of it when it has none."""
    blocks = _FENCE.findall(result)
    return blocks[-1] if blocks else result


def parse_review(text: str) -> Verdict:
    """PASS or FAIL from the first line of a review; `VerificationUnavailableError` when it is neither."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    word = re.sub(r"[^A-Z]", "", lines[0].split()[0].upper()) if lines else ""
    if word not in ("PASS", "FAIL"):
        raise VerificationUnavailableError(f"The validator's answer does not start with PASS or FAIL: {text[:200]!r}")
    return Verdict(word == "PASS", " ".join(lines[1:2])[:500] or word.lower())


def find_problem(problem_id: str) -> Problem:
    """A coding benchmark problem by id (Colony's own, or HumanEval's when installed)."""
    from colony.bench.problems import humaneval_problems, own_problems

    for problem in own_problems():
        if problem.id == problem_id:
            return problem
    if problem_id.startswith("HumanEval/"):
        try:
            for problem in humaneval_problems():
                if problem.id == problem_id:
                    return problem
        except RuntimeError as exc:
            raise MarketError(str(exc)) from exc
    raise MarketError(f"No coding benchmark problem {problem_id!r}; `colony bench` lists the suites "
                      "(Colony's own ids look like colony/t1-digit-sum).")


async def _sandboxed(problem: Problem, result: str, node: Node) -> Verdict:
    from colony.bench.harness import verify
    from colony.errors import SandboxError

    try:
        verdict = await asyncio.to_thread(verify, problem, extract_code(result), colony_home=node.settings.home)
    except SandboxError as exc:
        raise VerificationUnavailableError(f"The sandbox could not run the tests: {exc}") from exc
    if verdict.outcome == "error":
        raise VerificationUnavailableError(f"The tests gave no verdict: {verdict.detail}")
    return Verdict(verdict.passed, verdict.outcome if verdict.passed else f"{verdict.outcome}: {verdict.detail}"[:500])


async def _review(node: Node, validator: str, goal: str, result: str) -> Verdict:
    from colony.agent.loop import run_turn_collect

    agent = await node.agent(name=validator)
    agent = dataclasses.replace(agent, max_tool_calls=0)  # a reviewer reads; it does not act
    finished, _ = await run_turn_collect(agent, node.deps, REVIEW_PROMPT.format(goal=goal, result=result),
                                         surface="market")
    if finished.status != "completed":
        raise VerificationUnavailableError(f"The validator {validator!r} could not answer: "
                                           f"{finished.error or finished.status}")
    return parse_review(finished.text)


async def run_check(node: Node, method: Verification, spec: VerifySpec, goal: str, result: str) -> Verdict | None:
    """The verdict on ``result`` by ``method``; None for ``approval`` (a person decides)."""
    from colony.bench.problems import Problem

    if method == "tests":
        assert spec.tests is not None and spec.entry_point is not None
        problem = Problem(id="market/tests", suite="colony", tier=1, entry_point=spec.entry_point, prompt="",
                          tests=spec.tests, solution="")
        return await _sandboxed(problem, result, node)
    if method == "benchmark":
        assert spec.problem is not None
        return await _sandboxed(find_problem(spec.problem), result, node)
    if method == "review":
        assert spec.validator is not None
        return await _review(node, spec.validator, goal, result)
    return None
