"""The agent (A2, A3): perception, context assembly and the loop that runs one turn.

May import `llm`, `tools`, `store`, `config`, `errors`; never a surface (cli, server, acp).
"""

from __future__ import annotations

from colony.agent.events import AgentEvent, TurnFinished
from colony.agent.loop import Agent, RunDeps, override_model, run_turn, run_turn_collect
from colony.agent.perception import Perception, perceive

__all__ = [
    "Agent",
    "AgentEvent",
    "Perception",
    "RunDeps",
    "TurnFinished",
    "override_model",
    "perceive",
    "run_turn",
    "run_turn_collect",
]
