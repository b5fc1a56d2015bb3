"""Bounding what a tool hands back to the model.

A tool result lands in the model's context window, so every built-in tool caps its output at
``settings.tool_output_limit`` characters. The cut is always visible: a marker
``…[truncated N chars]`` says how much was left out, so the model knows to narrow its request
(a line offset, a smaller directory, a more specific pattern) instead of assuming it saw all.
"""

from __future__ import annotations

__all__ = ["keep_head_tail", "truncate", "truncate_middle", "truncation_marker"]


def truncation_marker(omitted: int) -> str:
    """The marker that replaces ``omitted`` characters of output."""
    return f"…[truncated {omitted} chars]"


def truncate(text: str, limit: int) -> str:
    """Keep the head of ``text`` so that the result, marker included, fits in ``limit`` characters.

    Used where the beginning matters most (a file, a listing, search hits in order).
    """
    if len(text) <= limit:
        return text
    budget = max(0, limit - len(truncation_marker(len(text))) - 1)
    return f"{text[:budget]}\n{truncation_marker(len(text) - budget)}"


def keep_head_tail(head: str, tail: str, limit: int, dropped: int = 0) -> str:
    """Join ``head`` and ``tail`` of a longer text, cutting its middle to fit ``limit`` characters.

    Command output is read this way: its first lines say what started, its last lines hold the
    error or the summary. ``dropped`` counts characters already discarded between the two
    parts upstream (a capture buffer keeps only bounded head and tail), so the marker stays
    honest about the total.
    """
    total = len(head) + dropped + len(tail)
    if dropped == 0 and total <= limit:
        return head + tail
    budget = max(0, limit - len(truncation_marker(total)) - 2)
    keep_tail = min(len(tail), budget // 2)
    keep_head = min(len(head), budget - keep_tail)
    keep_tail = min(len(tail), budget - keep_head)
    omitted = total - keep_head - keep_tail
    end = tail[len(tail) - keep_tail :] if keep_tail else ""
    return f"{head[:keep_head]}\n{truncation_marker(omitted)}\n{end}"


def truncate_middle(text: str, limit: int) -> str:
    """Keep the beginning and the end of ``text`` within ``limit`` characters."""
    if len(text) <= limit:
        return text
    half = len(text) // 2
    return keep_head_tail(text[:half], text[half:], limit)
