"""Colony: a local-first platform for autonomous LLM agents.

The layers, bottom up: `errors` and `config`; `store` (SQLite); `llm` (models and providers);
`tools` (registry, governance middleware, built-ins); `agent` (perception, context, the loop);
`node` (wiring); surfaces (`cli`, later the server and ACP). See docs/architecture.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
