"""Secret redaction for the store, audit rows, logs and model context.

Two nets: values under secret-looking keys (``api_key``, ``password``, ``token``…) are replaced
whole, and secret-shaped substrings (bearer tokens, ``sk-…`` keys, AWS keys, GitHub tokens,
PEM private keys, hex private keys, ``KEY=value`` assignments) are masked wherever they appear.
The store applies it at its boundary to every free-text column it writes (messages, turns, model
calls, tool calls, approvals, episodes, task events and checkpoints, memories), so a secret never
reaches the database whichever path it came by.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "redact", "redact_text"]

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(?:^|_)(api_?key|secret|client_secret|password|passwd|pwd|token|auth_token|access_token|"
    r"refresh_token|authorization|private_key|access_key|credentials?|session_key|cookie|mnemonic|seed_phrase)(?:$|_)"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(_CAMEL.sub("_", key).replace("-", "_").lower()))

_PATTERNS: list[re.Pattern[str]] = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
    re.compile(r"\b(sk|pk|rk)-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}\b"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b"),  # JWT
    re.compile(r"\b0x[0-9a-fA-F]{64}\b"),  # EVM private keys
    re.compile(r"\bnsec1[02-9ac-hj-np-z]{20,}\b"),  # Nostr secret keys
]
# "Bearer <token>" and KEY=value / key: value assignments keep their label, lose the value.
_LABELLED = [
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(
        r"(?i)(\b[A-Z0-9_]*(?:API_?KEY|SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|ACCESS_KEY)[A-Z0-9_]*\s*[=:]\s*)"
        r"(['\"]?)[^\s'\"]{4,}\2"
    ),
]


#: Every pattern above needs one of these fragments; text without any of them is returned as it is.
#: One pass over the text instead of a dozen: redaction sits on every log line and store write.
_GATE = re.compile(
    r"-----BEGIN|\b(?:sk|pk|rk)-|\bgh[pousr]_|github_pat_|\bxox[abprs]-|\b(?:AKIA|ASIA)|\bAIza|\beyJ|\b0x[0-9a-fA-F]{64}"
    r"|\bnsec1|(?i:bearer|API_?KEY|SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|ACCESS_KEY)"
)


def redact_text(text: str) -> str:
    """Mask secret-shaped substrings in free text."""
    if not text or not _GATE.search(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    for pattern in _LABELLED:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact(value: Any, *, _key: str | None = None) -> Any:
    """Return a copy of a JSON-like value with secrets masked (by key name and by shape)."""
    if _key is not None and isinstance(value, str | bytes) and value and _is_secret_key(_key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, _key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
