"""Adopting a canonical and taking an update hold the cognition substrate's lock, so a tool call's
learning step (which runs under it, `Substrate.after_call`) never lands on weights being replaced."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from colony.cognition import build_substrate
from colony.cognition.predictor import ARCH, N_PARAMS
from colony.config import Settings
from colony.federation import learn_task
from colony.federation.learning import UpdateBody, fedavg
from colony.store import open_database


def test_an_adoption_waits_for_a_learning_step_in_progress(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", memory_embedder="none", cognition_enabled=True)
    db = open_database(tmp_path / "node.db")
    try:
        sub = build_substrate(db, settings)
        assert sub.predictor is not None
        node = SimpleNamespace(cognition=sub)  # what `_adopt_own` reads of a node
        body = fedavg({"a" * 64: UpdateBody(arch=ARCH, round=0, params=(0.2,) * N_PARAMS, samples=1000)},
                      base_round=0)
        done = threading.Event()

        def adopt() -> None:
            learn_task._adopt_own(node, body)  # type: ignore[arg-type]
            done.set()

        with sub.exclusive():  # a tool call's learning step in progress
            worker = threading.Thread(target=adopt)
            worker.start()
            assert not done.wait(0.5)  # the adoption waits for it
            assert sub.predictor.canonical_round == 0
        assert done.wait(10)
        worker.join()
        assert sub.predictor.canonical_round == 1 and np.allclose(sub.predictor.parameters(), 0.2)
    finally:
        db.close()
