"""The verified coding benchmark (B): problems, sandboxed verification, scoring, stored runs.

A run gives each problem to an agent (or, for a harness check, its canonical solution), runs the
hidden tests in the sandbox, and scores pass@1 per tier and overall — no model judge.
May import: `colony.sandbox`, `colony.store`, `colony.agent`, `colony.config`, `colony.errors`.
"""

from __future__ import annotations

from colony.bench.harness import HARNESS_LIMITS, Verdict, verify, verify_many
from colony.bench.problems import Problem, Suite, load_problems, own_problems, parse_shard, shard

__all__ = ["HARNESS_LIMITS", "Problem", "Suite", "Verdict", "load_problems", "own_problems", "parse_shard", "shard",
           "verify", "verify_many"]
