"""Migration 24, federation: why a member was removed.

A member removed by its operator (``colony peers remove``) and one removed because this node holds a
proof that it signed two ledger histories (`colony.federation.convict`) are both ``removed``; the
reason tells them apart, so a refusal can say why and a convicted node cannot come back through an
invite. NULL while the member is not removed, or when an operator removed it.
"""

from __future__ import annotations

__all__ = ["REMOVAL_REASON_SCHEMA"]

REMOVAL_REASON_SCHEMA = """
ALTER TABLE federation_nodes ADD COLUMN removed_reason TEXT
    CHECK (removed_reason IS NULL OR removed_reason IN ('equivocated'));
"""
