"""Counterfactual lessons (module 7): what to do differently, learned from turns that went badly.

Only negative episodes teach (a failed or partial turn, or a user who sounded unhappy). The
analysis is rule-based on purpose, like episodes themselves: the failing call's outcome names
the alternative that would most likely have worked ("invalid_arguments" -> send the schema's
required fields; "timeout" -> split the work). A lesson is kept with its task type and keywords,
retrieved by either into the next similar turn's context, and reinforced each time a turn that
carried it in its context succeeds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from colony.cognition import _store
from colony.store import Database

__all__ = ["LessonDraft", "Lessons", "derive_lesson"]

_WORD = re.compile(r"[a-z][a-z0-9_]{2,}")
_STOP = frozenset(["the", "and", "for", "you", "with", "this", "that", "from", "into", "your", "please", "can", "could", "would", "have", "what", "when"])

#: Failing outcome -> (alternative, principle). ``{tool}`` is filled in.
_RULES: dict[str, tuple[str, str]] = {
    "invalid_arguments": ("send every required field, matching the schema",
                          "When {tool} rejects its arguments, re-read its schema and send all required fields."),
    "unknown_tool": ("use only the tools listed in the system prompt",
                     "Call only listed tools; {tool} does not exist here."),
    "denied": ("explain the intended change and ask, or take a read-only path",
               "When {tool} is denied, do not retry it; explain the change or choose a read-only approach."),
    "timeout": ("split the work into smaller calls",
                "When {tool} times out, split the work into smaller steps."),
    "unavailable": ("wait or use a different tool", "When {tool} is unavailable, switch to another approach."),
    "postcondition_failed": ("verify the result before moving on",
                             "After {tool}, verify the effect before relying on it."),
    "error": ("inspect the inputs first (read before acting)",
              "When {tool} fails, read the relevant state first and retry with corrected input."),
    "budget_exhausted": ("plan fewer, more targeted calls", "Plan fewer, more targeted tool calls."),
}


@dataclass(frozen=True)
class LessonDraft:
    task_type: str
    action_taken: str
    alternative: str
    lesson: str
    keywords: tuple[str, ...]
    confidence: float


def keywords(text: str, limit: int = 12) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for w in _WORD.findall(text.lower()):
        if w not in _STOP:
            seen.setdefault(w, None)
    return tuple(list(seen)[:limit])


def derive_lesson(*, task_type: str, prompt: str, calls: Sequence[tuple[str, str]], status: str,
                  sentiment: str) -> LessonDraft | None:
    """A lesson from one turn, or None when the turn was not negative or shows nothing to change."""
    failed = [(tool, outcome) for tool, outcome in calls if outcome != "ok"]
    negative = status != "completed" or bool(failed) or sentiment == "negative"
    if not negative:
        return None
    if failed:
        tool, outcome = failed[0]
        alternative, principle = _RULES.get(outcome, _RULES["error"])
        action = f"called {tool} ({outcome})"
    elif not calls and status == "completed":  # unhappy user, no tools: the answer missed
        tool, alternative = "", "check the facts with a tool before answering"
        principle, action = "When the user is unhappy with an answer given without tools, verify with a tool.", "answered without tools"
    else:
        return None
    words = keywords(f"{prompt} {tool}")
    return LessonDraft(task_type, action, alternative, principle.format(tool=tool), words,
                       0.5 if failed else 0.4)


class Lessons:
    name = "lessons"
    enabled = True

    def __init__(self, db: Database, *, limit: int = 3) -> None:
        self.db = db
        self.limit = limit
        self.learned = 0
        self.reinforced = 0

    def learn(self, draft: LessonDraft, session_id: str | None) -> int:
        self.learned += 1
        return _store.insert_lesson(self.db, session_id=session_id, task_type=draft.task_type,
                                    action_taken=draft.action_taken, alternative=draft.alternative,
                                    lesson=draft.lesson, keywords=draft.keywords, confidence=draft.confidence)

    def retrieve(self, task_type: str, text: str) -> list[tuple[int, str, float]]:
        rows = _store.lessons_matching(self.db, task_type, keywords(text), self.limit)
        return [(int(r["id"]), str(r["lesson"]), float(r["confidence"])) for r in rows]

    def reinforce(self, lesson_ids: Sequence[int]) -> None:
        for lid in lesson_ids:
            _store.bump_lesson(self.db, lid)
            self.reinforced += 1

    def dump(self) -> dict[str, Any]:
        return {"learned": self.learned, "reinforced": self.reinforced}

    def load(self, state: Mapping[str, Any]) -> None:
        self.learned = int(state.get("learned", 0))
        self.reinforced = int(state.get("reinforced", 0))

    def status(self) -> dict[str, Any]:
        total, applied = _store.count_lessons(self.db)
        return {"enabled": True, "stored": total, "applied": applied, "learned": self.learned,
                "reinforced": self.reinforced}
