"""Secret redaction, re-exported where the tools have always imported it from.

The implementation lives in `colony.redaction` (the base layer) so the store can redact at its
boundary without importing the tools package.
"""

from __future__ import annotations

from colony.redaction import REDACTED, redact, redact_text

__all__ = ["REDACTED", "redact", "redact_text"]
