"""Redaction for log lines and span events, borrowed lazily from `colony.tools.redact`.

Observability is a base layer and must not import `colony.tools` at import time (the tool
middleware imports observability). The redaction helpers themselves are pure functions with no
heavy imports, so they are fetched on first use instead of being duplicated.
"""

from __future__ import annotations

from typing import Any

__all__ = ["redact_text", "redact_value"]


def redact_text(text: str) -> str:
    """Mask secret-shaped substrings (bearer tokens, API keys, private keys…) in ``text``."""
    from colony.tools.redact import redact_text as _redact_text

    return _redact_text(text)


def redact_value(value: Any) -> Any:
    """Mask secrets in a JSON-like value, by key name (``api_key``, ``token``…) and by shape."""
    from colony.tools.redact import redact

    return redact(value)
