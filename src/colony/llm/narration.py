"""Detecting a model that *describes* a tool call instead of making one.

Small models often answer "I'll use the read_file tool to open config.toml" and stop. The loop
gives such an answer one corrective retry; this module decides, by rule, whether an answer is
that kind of narration. Re-exported by `colony.llm.textcalls`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache

__all__ = ["looks_like_narrated_call"]

_INTENT = re.compile(
    r"\b(?:i['’]ll|i will|i['’]m going to|i am going to|i['’]m gonna|let me|let['’]s|i need to|"
    r"i must|i should|i['’]m about to|i am about to|i shall|we['’]ll|we will|i would like to|"
    r"i['’]d like to)\b"
    r"|^\W*(?:now |next,? |first,? )?(?:calling|using|invoking|running|executing)\b",
    re.I,
)
_NOT_INTENT = re.compile(
    r"\b(?:you (?:can|could|should|may|might|need)|i used|i called|i ran|i['’]ve|i have|i had|"
    r"won['’]t|will not|don['’]t|do not|cannot|can['’]t|no need|instead of|if|once|after)\b",
    re.I,
)
_SENTENCE = re.compile(r"(?<=[.!?:])\s+|\n+")


def looks_like_narrated_call(text: str, tool_names: Collection[str]) -> bool:
    """True when the answer announces a call to an offered tool but contains none.

    Rule-based and cheap: some sentence names a tool (``read_file``, ``read-file``,
    ``readFile``) after an intent phrase ("I'll", "let me", "Calling …"), and is neither a
    question nor past, negated or addressed to the user ("I used", "I won't", "you can use").
    """
    if not tool_names:
        return False
    mentions = _mention_pattern(frozenset(tool_names))
    if not mentions.search(text):
        return False
    from colony.llm.textcalls import recover_tool_calls  # a real call is not narration

    if recover_tool_calls(text, tool_names).calls:
        return False
    for sentence in _SENTENCE.split(text):
        mention = mentions.search(sentence)
        if mention is None or sentence.rstrip().endswith("?"):
            continue
        before = sentence[: mention.start()]
        if _INTENT.search(before) and not _NOT_INTENT.search(before):
            return True
    return False


@lru_cache(maxsize=32)
def _mention_pattern(tool_names: frozenset[str]) -> re.Pattern[str]:
    """A tool name as prose writes it: any case, ``_``, ``-`` or nothing between its words.

    A space between the words is not accepted: "read file" is ordinary English.
    """
    words = (re.split(r"[-_.\s]+", name.strip()) for name in tool_names)
    parts = sorted(("[-_]?".join(re.escape(w) for w in ws if w) for ws in words), key=len, reverse=True)
    alternatives = "|".join(p for p in parts if p) or "(?!)"
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.I)
