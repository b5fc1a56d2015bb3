"""Evals (B): behavioural test cases for the agent, stored runs, regressions, and A/B statistics.

Cases live in the database (`seed` provides the starting suite) and are run against any model
through a throwaway node per trial (`runner`); properties are checked mechanically
(`properties`). `ab` compares a module set on against off with Wilson intervals (`stats`) and an
A/A control. May import `node`, `agent`, `config`, `store`, `llm`; only surfaces import this.
"""

from __future__ import annotations

from colony.evals.ab import ABReport, ABRow, run_ab
from colony.evals.models import CATEGORIES, EvalCase, Observation
from colony.evals.runner import Regression, RunReport, run_case, run_suite
from colony.evals.seed import SEED_MIN, seed_suite
from colony.evals.stats import wilson

__all__ = [
    "CATEGORIES",
    "SEED_MIN",
    "ABReport",
    "ABRow",
    "EvalCase",
    "Observation",
    "Regression",
    "RunReport",
    "run_ab",
    "run_case",
    "run_suite",
    "seed_suite",
    "wilson",
]
