"""Federated averaging of the step predictor: held-out accuracy of each node before vs after.

Run: .venv/bin/python bench/bench_fedavg.py [--seeds 16] [--heldout 200] [--noise 0.5 1.5]
     [--sizes 3000 2000 1500 40]

The colony is simulated (`evals/federation/fedavg.py` says how): nodes whose tool outcomes come
from one shared world seen through node-specific offsets of sd ``--noise``; the last size is the
small-data node. The whole signed path runs: each node's update is a signed kind-7310 event, the
queen opens and averages them and signs the kind-7311 canonical, each node opens and adopts it.
Accuracy is prequential on each node's own held-out calls, pooled over seeds, with Wilson
intervals; "gain" is after minus before on the same calls with a hierarchical bootstrap interval
(seeds, then calls). The repository has no recorded audit logs of real tool calls to replay, so
the data is generated; larger ``--noise`` is the test of where sharing stops helping.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from evals.federation.fedavg import MODES, measure  # noqa: E402

from _stats import machine  # noqa: E402


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}"


def _ci(ci: tuple[float, float]) -> str:
    return f"[{100 * ci[0]:+5.1f}, {100 * ci[1]:+5.1f}]"


def report(sizes: list[int], heldout: int, seeds: int, noise: float) -> None:
    t0 = time.perf_counter()
    results = measure(sizes, heldout=heldout, seeds=range(seeds), noise=noise)
    took = time.perf_counter() - t0
    print(f"\nFederated averaging, {len(sizes)} nodes, node noise sd {noise}, {seeds} seeds x {heldout} held-out "
          f"calls per node  ({machine()}, {took:.1f} s)")
    print(f"{'node':>4} {'train':>6} {'acc before':>19} {'mode':>8} {'acc after':>19} {'gain (pts)':>21} "
          f"{'log-loss gain (mnats)':>27}")
    for r in results:
        lo, hi = r.acc_before_ci
        for mode in MODES:
            alo, ahi = r.acc_after_ci[mode]
            lg, (llo, lhi) = r.loss_gain[mode], r.loss_gain_ci[mode]
            print(f"{r.node:>4} {r.train_samples:>6} {_pct(r.acc_before)} [{_pct(lo)},{_pct(hi)}] {mode:>8} "
                  f"{_pct(r.acc_after[mode])} [{_pct(alo)},{_pct(ahi)}] {100 * r.gain[mode]:+5.1f} "
                  f"{_ci(r.gain_ci[mode])} {1000 * lg:+7.1f} [{1000 * llo:+6.1f}, {1000 * lhi:+6.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--heldout", type=int, default=200)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.5, 1.5])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 2000, 1500, 40])
    args = parser.parse_args()
    for noise in args.noise:
        report(args.sizes, args.heldout, args.seeds, noise)


if __name__ == "__main__":
    main()
