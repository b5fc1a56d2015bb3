"""Turning a finished turn into an episode: what was asked, what was done, how it went.

Rule-based on purpose: an episode is written for every turn, including failed ones when the
model is down, so it cannot depend on a model call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from colony.store.sessions import Outcome, Sentiment

__all__ = ["judge_outcome", "judge_sentiment"]

_NEGATIVE = re.compile(
    r"\b(wrong|broken|doesn'?t work|didn'?t work|fail(ed|s|ing)?|error|bug|annoy\w*|frustrat\w*|useless|bad|again)\b",
    re.IGNORECASE,
)
_POSITIVE = re.compile(r"\b(thanks?|thank you|great|perfect|awesome|nice|excellent|works?|love)\b", re.IGNORECASE)


def judge_outcome(status: str, tool_outcomes: Sequence[str]) -> Outcome:
    if status == "cancelled":
        return "cancelled"
    if status != "completed":
        return "failure"
    if any(o != "ok" for o in tool_outcomes):
        return "partial"
    return "success"


def judge_sentiment(prompt: str, outcome: Outcome) -> Sentiment:
    """The user's mood from their words, nudged by how the turn went."""
    text = prompt[:2000]
    neg = len(_NEGATIVE.findall(text)) + (1 if outcome == "failure" else 0)
    pos = len(_POSITIVE.findall(text)) + (1 if outcome == "success" else 0)
    if neg > pos:
        return "negative"
    if pos > neg + 1:
        return "positive"
    return "neutral"
