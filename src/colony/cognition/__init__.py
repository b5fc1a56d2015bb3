"""Cognition (C): the nine-module substrate that watches the agent's tool use and shapes its turns.

Surprise tracker, belief state, blackboard, neuromodulation, precision controller, memory graph,
counterfactual lessons, integration proxy (phi) and holographic workspace -- plus a continuous
cognitive state on the unit sphere and a learned step-success predictor. Each module is a small
file behind a `typing.Protocol` (`protocols`), has a no-op for ablations, and persists its state
(`state`) so a restarted node resumes. `substrate.Substrate` bundles them and is the only thing
the rest of Colony sees: the tool executor calls it around every call, the loop calls it per
turn through `colony.agent.context.CognitionProvider`.

These are engineering proxies with names borrowed from neuroscience, not claims about minds.
Whether they help is an empirical question for `colony eval ab`; the substrate is off by default.

May import `agent` (perception, episodes), `memory`, `tools`, `store`, `config`, `errors`;
nothing in the core imports this package.
"""

from __future__ import annotations

from colony.cognition.substrate import MODULES, Substrate, build_substrate

__all__ = ["MODULES", "Substrate", "build_substrate"]
