"""The step-success predictor: a small feed-forward network trained online on the audit log.

Features of a call (all computable before it runs): a hashed one-hot of the tool name, the
tool's recent failure rate and experience, the node's recent failure rate, whether the
session's previous call failed, the size of the arguments and whether the input carried risk
words. One tanh hidden layer, a sigmoid output, one SGD step per observed call (logistic loss).
NumPy only: it is small enough that a training step costs tens of microseconds.

Its accuracy is measured *prequentially* -- each call is predicted before the network learns
from it -- against the constant baseline that always predicts the majority outcome seen so
far. The predicted probability feeds the surprise tracker's expected outcome once the network
has seen `WARMUP` calls.

For federated averaging (`colony.federation.learning`) the learned parameters travel as one flat
vector (`parameters`, layout named by `ARCH`); the per-tool histories and counters are this node's
own context and never leave it. `canonical_round` is the colony's canonical round the parameters started
from and `base_seen` the sample count at that moment, so `samples_since_round` is what this node
has added since -- the weight its next update carries.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from colony.store.records import RecordStore

__all__ = ["ARCH", "N_FEATURES", "N_PARAMS", "WARMUP", "StepPredictor", "prequential"]

TOOL_BUCKETS = 16
N_FEATURES = TOOL_BUCKETS + 6
HIDDEN = 16
WARMUP = 20
WINDOW = 8
#: Parameter count and layout name: w1 (row-major), b1, w2, b2. Change it whenever the features,
#: their hashing or the layer sizes change, so peers refuse weights that mean something else.
N_PARAMS = N_FEATURES * HIDDEN + HIDDEN + HIDDEN + 1
ARCH = f"step-predictor/1/{N_FEATURES}x{HIDDEN}"
Arr = npt.NDArray[np.float64]


def _bucket(tool: str) -> int:
    return int.from_bytes(hashlib.blake2b(tool.encode(), digest_size=2).digest(), "little") % TOOL_BUCKETS


class StepPredictor:
    name = "predictor"
    enabled = True

    def __init__(self, *, lr: float = 0.1, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.lr = lr
        self.w1: Arr = rng.standard_normal((N_FEATURES, HIDDEN)) * (1 / math.sqrt(N_FEATURES))
        self.b1: Arr = np.zeros(HIDDEN)
        self.w2: Arr = rng.standard_normal(HIDDEN) * (1 / math.sqrt(HIDDEN))
        self.b2 = 0.0
        self.tool_history: dict[str, deque[int]] = {}
        self.tool_counts: dict[str, int] = {}
        self.recent: deque[int] = deque(maxlen=WINDOW)
        self.last_failed: dict[str, int] = {}
        self.seen = self.correct = self.baseline_correct = self.successes = 0
        self.canonical_round = self.base_seen = 0

    # -- features ----------------------------------------------------------------------------
    def features(self, tool: str, *, session: str | None = None, arg_bytes: int = 0, risky: bool = False) -> Arr:
        x = np.zeros(N_FEATURES)
        x[_bucket(tool)] = 1.0
        hist = self.tool_history.get(tool)
        x[TOOL_BUCKETS] = (sum(hist) + 0.2) / (len(hist) + 1) if hist else 0.2
        x[TOOL_BUCKETS + 1] = math.log1p(self.tool_counts.get(tool, 0)) / 5
        x[TOOL_BUCKETS + 2] = (sum(self.recent) + 0.2) / (len(self.recent) + 1)
        x[TOOL_BUCKETS + 3] = float(self.last_failed.get(session or "", 0))
        x[TOOL_BUCKETS + 4] = math.log1p(max(0, arg_bytes)) / 10
        x[TOOL_BUCKETS + 5] = 1.0 if risky else 0.0
        return x

    def predict(self, x: Arr) -> float:
        h = np.tanh(x @ self.w1 + self.b1)
        return float(1 / (1 + math.exp(-float(np.clip(h @ self.w2 + self.b2, -30, 30)))))

    @property
    def trained(self) -> bool:
        return self.seen >= WARMUP

    # -- learning ----------------------------------------------------------------------------
    def learn(self, x: Arr, ok: bool, tool: str, session: str | None = None) -> float:
        """One prequential step: score the prediction, take an SGD step, update the histories."""
        h = np.tanh(x @ self.w1 + self.b1)
        p = float(1 / (1 + math.exp(-float(np.clip(h @ self.w2 + self.b2, -30, 30)))))
        y = 1.0 if ok else 0.0
        majority_ok = self.successes * 2 >= self.seen  # the constant baseline, ties to success
        self.correct += (p >= 0.5) == ok
        self.baseline_correct += majority_ok == ok
        self.seen += 1
        self.successes += ok
        grad_out = p - y  # d(logistic loss)/d(logit)
        grad_h = grad_out * self.w2 * (1 - h * h)
        self.w2 -= self.lr * grad_out * h
        self.b2 -= self.lr * grad_out
        self.w1 -= self.lr * np.outer(x, grad_h)
        self.b1 -= self.lr * grad_h
        failed = 0 if ok else 1
        self.tool_history.setdefault(tool, deque(maxlen=WINDOW)).append(failed)
        self.tool_counts[tool] = self.tool_counts.get(tool, 0) + 1
        self.recent.append(failed)
        self.last_failed[session or ""] = failed
        if len(self.last_failed) > 1000:
            self.last_failed.clear()
        return p

    def fit_audit(self, records: RecordStore, limit: int = 5000) -> dict[str, float]:
        """Train on the audit log, oldest first; returns the prequential accuracies."""
        for row in reversed(records.list_tool_calls(limit=limit)):
            if row["outcome"] == "cancelled":
                continue
            risky = json.loads(row["risk"] or "[]") != []
            x = self.features(row["tool"], session=row["session_id"], arg_bytes=len(row["arguments"]), risky=risky)
            self.learn(x, row["outcome"] == "ok", row["tool"], row["session_id"])
        return self.accuracy()

    def accuracy(self) -> dict[str, float]:
        n = max(1, self.seen)
        return {"samples": self.seen, "accuracy": round(self.correct / n, 4),
                "baseline_accuracy": round(self.baseline_correct / n, 4)}

    # -- federation ----------------------------------------------------------------------------
    def parameters(self) -> Arr:
        """The learned parameters as one flat vector (a copy), in `ARCH`'s layout."""
        return np.concatenate([self.w1.ravel(), self.b1, self.w2, [self.b2]])

    def set_parameters(self, vector: Arr, *, canonical_round: int | None = None) -> None:
        """Adopt a flat parameter vector; with ``canonical_round``, count later samples from here."""
        v = np.asarray(vector, dtype=float)
        if v.shape != (N_PARAMS,) or not np.all(np.isfinite(v)):
            raise ValueError(f"expected {N_PARAMS} finite parameters for {ARCH}, got shape {v.shape}")
        split = N_FEATURES * HIDDEN
        self.w1 = v[:split].reshape(N_FEATURES, HIDDEN).copy()
        self.b1 = v[split:split + HIDDEN].copy()
        self.w2 = v[split + HIDDEN:split + 2 * HIDDEN].copy()
        self.b2 = float(v[-1])
        if canonical_round is not None:
            self.canonical_round, self.base_seen = canonical_round, self.seen

    @property
    def samples_since_round(self) -> int:
        return max(0, self.seen - self.base_seen)

    # -- state -------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {
            "w1": self.w1.tolist(), "b1": self.b1.tolist(), "w2": self.w2.tolist(), "b2": self.b2,
            "tool_history": {t: list(h) for t, h in self.tool_history.items()}, "tool_counts": self.tool_counts,
            "recent": list(self.recent), "seen": self.seen, "correct": self.correct,
            "baseline_correct": self.baseline_correct, "successes": self.successes,
            "canonical_round": self.canonical_round, "base_seen": self.base_seen,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        if "w1" not in state or np.shape(state["w1"]) != (N_FEATURES, HIDDEN):
            return  # a different architecture: start fresh rather than load mismatched weights
        self.w1, self.b1 = np.array(state["w1"], dtype=float), np.array(state["b1"], dtype=float)
        self.w2, self.b2 = np.array(state["w2"], dtype=float), float(state["b2"])
        self.tool_history = {t: deque(h, maxlen=WINDOW) for t, h in state.get("tool_history", {}).items()}
        self.tool_counts = {t: int(c) for t, c in state.get("tool_counts", {}).items()}
        self.recent = deque(state.get("recent", []), maxlen=WINDOW)
        for key in ("seen", "correct", "baseline_correct", "successes", "canonical_round", "base_seen"):
            setattr(self, key, int(state.get(key, 0)))

    def status(self) -> dict[str, Any]:
        return {"enabled": True, "trained": self.trained, **self.accuracy(), "canonical_round": self.canonical_round,
                "samples_since_round": self.samples_since_round}


def prequential(samples: Sequence[tuple[str, str | None, int, bool, bool]], seed: int = 7) -> dict[str, float]:
    """Accuracy of a fresh predictor over (tool, session, arg bytes, risky, ok) samples, in order."""
    p = StepPredictor(seed=seed)
    for tool, session, size, risky, ok in samples:
        p.learn(p.features(tool, session=session, arg_bytes=size, risky=risky), ok, tool, session)
    return p.accuracy()
