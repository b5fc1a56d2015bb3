"""Language models and the providers that serve them (capability A1).

This package owns the one seam between Colony and a model: the message values (`messages`),
the `Model` protocol, the OpenAI-compatible wire mapping (`OpenAIChatModel`, one per endpoint:
Ollama, llama.cpp, vLLM or a hosted service), the `ProviderCascade` that adds retries, circuit
breakers, rate limits and fall-over across endpoints, local endpoint discovery (`build_model`),
and the clean-up every answer gets (`strip_thinking`, `recover_tool_calls`).

It may import `colony.config`, `colony.errors`, `colony.breaker` and `colony.ratelimit`; it
imports nothing from the agent, tools, CLI or server, which all depend on it instead.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from colony.llm import messages
from colony.llm.messages import (
    AssistantMessage,
    Message,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    StreamEvent,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from colony.llm.model import Model
from colony.llm.textcalls import RecoveredCalls, recover_tool_calls
from colony.llm.thinking import ThinkingFilter, strip_thinking

if TYPE_CHECKING:
    from colony.llm.cascade import CallRecord, OnCall, ProviderCascade, ProviderHealth
    from colony.llm.detect import DEFAULT_CANDIDATES, Candidate, build_model, discover_providers
    from colony.llm.openai_model import OpenAIChatModel

# The provider modules import the `openai` client (~0.4 s); load them on first use so that
# importing message types (every module does) stays cheap.
_LAZY = {
    "CallRecord": "cascade", "OnCall": "cascade", "ProviderCascade": "cascade", "ProviderHealth": "cascade",
    "DEFAULT_CANDIDATES": "detect", "Candidate": "detect", "build_model": "detect",
    "discover_providers": "detect", "OpenAIChatModel": "openai_model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'colony.llm' has no attribute {name!r}")
    return getattr(importlib.import_module(f"colony.llm.{module}"), name)

__all__ = [
    "DEFAULT_CANDIDATES",
    "AssistantMessage",
    "CallRecord",
    "Candidate",
    "Message",
    "Model",
    "ModelResponse",
    "ModelSettings",
    "OnCall",
    "OpenAIChatModel",
    "ProviderCascade",
    "ProviderHealth",
    "RecoveredCalls",
    "ResponseDone",
    "StreamEvent",
    "SystemMessage",
    "TextDelta",
    "ThinkingFilter",
    "ToolCall",
    "ToolDefinition",
    "ToolResultMessage",
    "Usage",
    "UserMessage",
    "build_model",
    "discover_providers",
    "messages",
    "recover_tool_calls",
    "strip_thinking",
]
