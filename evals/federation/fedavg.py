"""Does federated averaging help a node with little data predict its own tool calls?

A simulated colony: one "world" of tools, each with a true success log-odds; every node sees it
through its own per-tool offsets (Gaussian, sd ``noise``), its own mix of tools (Dirichlet), and
the same effects of risky input and argument size -- related but not identical distributions. The
tool names are real strings, so the predictor's hashed tool one-hot and per-tool histories see
what they see in production. One node has little data.

Per seed: every node trains a fresh `StepPredictor` (the shared round-0 initialisation) on its own
training calls; each sends a signed update (kind 7310, its own key); the queen opens them,
averages (`fedavg`) and signs the canonical (kind 7311); each node opens it and adopts it
(``replace`` and ``blend`` are both tried on copies). Then every node's *before* copy (its own
weights) and *after* copies are scored prequentially -- predict, then learn -- on the same
held-out continuation of that node's own stream.

Intervals: accuracies carry Wilson intervals over the pooled held-out calls; the improvement
(after minus before, paired on the same calls) carries a hierarchical bootstrap interval:
resample seeds, then calls within each resampled seed, so both the between-world and the
within-stream variation are in it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from colony.cognition.predictor import StepPredictor
from colony.evals.stats import wilson
from colony.federation.learning import (
    AdoptMode,
    apply_canonical,
    fedavg,
    make_update,
    open_canonical,
    open_update,
    sign_learning,
)
from colony.identity.keys import SchnorrKey

__all__ = ["TOOLS", "Call", "NodeResult", "bootstrap_ci", "measure", "node_calls", "score", "train", "world"]

TOOLS = ("read_file", "write_file", "run_command", "http_get", "search_web", "list_dir", "apply_patch",
         "python_eval", "git_diff", "send_mail")
MODES: tuple[AdoptMode, ...] = ("replace", "blend")
Arr = npt.NDArray[np.float64]


class Call(NamedTuple):
    tool: str
    session: str
    arg_bytes: int
    risky: bool
    ok: bool


def world(seed: int) -> Arr:
    """True per-tool success log-odds shared by the colony: mostly reliable, some flaky tools."""
    return np.random.default_rng(seed).normal(1.0, 1.5, len(TOOLS))


def node_calls(base: Arr, seed: int, n: int, *, noise: float) -> list[Call]:
    """``n`` calls of one node: its own tool mix and per-tool offsets from the shared world."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(0.0, noise, len(TOOLS))
    mix = rng.dirichlet(np.full(len(TOOLS), 2.0))
    calls = []
    for i in range(n):
        t = int(rng.choice(len(TOOLS), p=mix))
        risky = bool(rng.random() < 0.1)
        size = int(rng.lognormal(4.0, 1.5))
        logit = base[t] + offset[t] - 1.5 * risky - 0.07 * math.log1p(size)
        calls.append(Call(TOOLS[t], f"s{i // 10}", size, risky, bool(rng.random() < 1 / (1 + math.exp(-logit)))))
    return calls


def _step(p: StepPredictor, c: Call) -> float:
    return p.learn(p.features(c.tool, session=c.session, arg_bytes=c.arg_bytes, risky=c.risky), c.ok, c.tool,
                   c.session)


def train(calls: Sequence[Call]) -> StepPredictor:
    p = StepPredictor()
    for c in calls:
        _step(p, c)
    return p


def score(p: StepPredictor, calls: Sequence[Call]) -> tuple[Arr, Arr]:
    """Prequential per-call correctness (0/1) and log-loss (nats) on ``calls``; ``p`` keeps learning."""
    correct, loss = np.empty(len(calls)), np.empty(len(calls))
    for i, c in enumerate(calls):
        q = min(1 - 1e-6, max(1e-6, _step(p, c)))
        correct[i] = float((q >= 0.5) == c.ok)
        loss[i] = -math.log(q if c.ok else 1 - q)
    return correct, loss


def bootstrap_ci(per_seed: Sequence[Arr], *, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% hierarchical bootstrap interval of the mean of ``per_seed`` paired differences."""
    rng = np.random.default_rng(seed)
    s = len(per_seed)
    means = np.empty(reps)
    for r in range(reps):
        picked = rng.integers(0, s, s)
        means[r] = np.mean([per_seed[j][rng.integers(0, len(per_seed[j]), len(per_seed[j]))].mean()
                            for j in picked])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass(frozen=True)
class NodeResult:
    """One node over all seeds: accuracy before and after each adoption mode, with intervals."""

    node: int
    train_samples: int
    heldout: int
    acc_before: float
    acc_before_ci: tuple[float, float]
    acc_after: dict[str, float]
    acc_after_ci: dict[str, tuple[float, float]]
    gain: dict[str, float]                    # accuracy, after - before, paired
    gain_ci: dict[str, tuple[float, float]]
    loss_gain: dict[str, float]               # log-loss, before - after (positive = better)
    loss_gain_ci: dict[str, tuple[float, float]]


def measure(sizes: Sequence[int], *, heldout: int = 200, seeds: Sequence[int] = range(12),
            noise: float = 0.5) -> list[NodeResult]:
    """Run the colony once per seed and summarise each node (see the module docstring)."""
    keys = [SchnorrKey.generate() for _ in sizes]
    queen = SchnorrKey.generate()
    before: list[list[Arr]] = [[] for _ in sizes]
    gains: dict[str, list[list[Arr]]] = {m: [[] for _ in sizes] for m in MODES}
    losses: dict[str, list[list[Arr]]] = {m: [[] for _ in sizes] for m in MODES}
    after: dict[str, list[list[Arr]]] = {m: [[] for _ in sizes] for m in MODES}
    for seed in seeds:
        base = world(seed)
        streams = [node_calls(base, 1000 * seed + i, n + heldout, noise=noise) for i, n in enumerate(sizes)]
        local = [train(s[:n]) for s, n in zip(streams, sizes, strict=True)]
        events = [sign_learning(k, make_update(p), created_at=1_700_000_000 + seed) for k, p in zip(keys, local, strict=True)]
        pool = {e.pubkey: open_update(e, base_round=0) for e in events}
        published = sign_learning(queen, fedavg(pool, base_round=0), created_at=1_700_000_001 + seed)
        canonical = open_canonical(published, queens=frozenset({queen.public_hex}))
        for i, n in enumerate(sizes):
            hold = streams[i][n:]
            c0, l0 = score(copy.deepcopy(local[i]), hold)
            before[i].append(c0)
            for mode in MODES:
                adopted = copy.deepcopy(local[i])
                apply_canonical(adopted, canonical, mode=mode)
                c1, l1 = score(adopted, hold)
                after[mode][i].append(c1)
                gains[mode][i].append(c1 - c0)
                losses[mode][i].append(l0 - l1)
    results = []
    for i, n in enumerate(sizes):
        total = len(seeds) * heldout
        k0 = int(sum(a.sum() for a in before[i]))
        k1 = {m: int(sum(a.sum() for a in after[m][i])) for m in MODES}
        results.append(NodeResult(
            node=i, train_samples=n, heldout=total, acc_before=k0 / total, acc_before_ci=wilson(k0, total),
            acc_after={m: k1[m] / total for m in MODES}, acc_after_ci={m: wilson(k1[m], total) for m in MODES},
            gain={m: float(np.mean([g.mean() for g in gains[m][i]])) for m in MODES},
            gain_ci={m: bootstrap_ci(gains[m][i]) for m in MODES},
            loss_gain={m: float(np.mean([g.mean() for g in losses[m][i]])) for m in MODES},
            loss_gain_ci={m: bootstrap_ci(losses[m][i]) for m in MODES}))
    return results
