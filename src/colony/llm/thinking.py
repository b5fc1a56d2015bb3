"""Strip ``<think>``/``<thinking>`` reasoning blocks from model output, whole or streamed.

Reasoning models (DeepSeek-R1, Qwen3, QwQ, distilled small models) write their chain of thought
between ``<think>`` tags. It must never reach the user, the recorded history that is sent back to
the model, or the tool-call recovery (a call *sketched* while thinking is not a call).

The rules, shared by `strip_thinking` and `ThinkingFilter`:

* A block runs from an opening tag to the first closing tag of either name, case-insensitive;
  opening tags inside a block are ignored (models do not nest thoughts).
* An opening tag that is never closed hides everything after it: the model ran out of tokens
  while thinking, so there is no answer yet.
* A closing tag before any opening tag means the chat template already opened the block
  (DeepSeek-R1 does this), so everything before it was thinking. Other stray closing tags are
  dropped.
* Whitespace right after a removed block or tag is removed with it, and the result is stripped
  at both ends, so ``"<think>…</think>\\n\\nAnswer"`` becomes ``"Answer"`` and
  ``"Hi <think>…</think> there"`` becomes ``"Hi there"``.

A stream cannot take back text it has released, so `ThinkingFilter` cannot detect the
"template opened the block" case by itself; whoever knows the template says so with
``open_at_start=True``. With that single exception the filter releases exactly what
`strip_thinking` returns for the concatenated text, whatever the chunking.

This module imports nothing from Colony.
"""

from __future__ import annotations

import re

__all__ = ["ThinkingFilter", "strip_thinking"]

# ASCII-only case folding: with Unicode folding, "K" (KELVIN SIGN) would match the "k" in think.
_TAG = re.compile(r"(?ai:<(/?)think(?:ing)?>)")
_BLOCK_OR_STRAY_CLOSE = re.compile(
    r"(?ai:<think(?:ing)?>.*?(?:</think(?:ing)?>|\Z)|</think(?:ing)?>)\s*", re.DOTALL
)
_TAG_TEXTS = ("<think>", "</think>", "<thinking>", "</thinking>")
_LONGEST_TAG = max(len(tag) for tag in _TAG_TEXTS)


def strip_thinking(text: str) -> str:
    """Return ``text`` without its thinking blocks, trimmed (see the module rules).

    Args:
        text: A complete model answer.

    Returns:
        The visible answer; empty when the model only thought.
    """
    if "<" not in text:  # the common case: no tag can be present
        return text.strip()
    first = _TAG.search(text)
    if first is None:
        return text.strip()
    if first.group(1):  # a closing tag before any opening one: the template opened the block
        text = text[first.end() :]
    return _BLOCK_OR_STRAY_CLOSE.sub("", text).strip()


def _could_be_tag_start(tail: str) -> bool:
    """Whether ``tail`` (which starts with ``<``) may grow into a thinking tag."""
    if len(tail) >= _LONGEST_TAG or not tail.isascii():
        return False
    lowered = tail.lower()
    return any(tag.startswith(lowered) for tag in _TAG_TEXTS)


class ThinkingFilter:
    """Release the visible part of a streamed answer as early as it is safe to.

    Text is held back only while it might still turn out to be part of a tag (at most ten
    characters after a ``<``) or while it is whitespace that the trimming rules may drop.

    Example:
        >>> f = ThinkingFilter()
        >>> [f.feed(c) for c in ("<thi", "nk>secret</th", "ink>visible")], f.flush()
        (['', '', 'visible'], '')
    """

    def __init__(self, *, open_at_start: bool = False) -> None:
        """Create a filter for one stream.

        Args:
            open_at_start: The chat template already emitted the opening tag, so the stream
                starts inside a thinking block and its first closing tag ends it.
        """
        self._thinking = open_at_start
        self._buffer = ""  # text not yet classified: at most a possible partial tag
        self._held_ws = ""  # trailing visible whitespace, released only if more text follows
        self._skip_ws = True  # drop whitespace at the start and after a block

    @property
    def thinking(self) -> bool:
        """True while the stream is inside a thinking block (a UI may show a spinner)."""
        return self._thinking

    def feed(self, chunk: str) -> str:
        """Take the next chunk of the stream and return the visible text released by it."""
        self._buffer += chunk
        out: list[str] = []
        while True:
            match = _TAG.search(self._buffer)
            if match is None:
                break
            self._take(self._buffer[: match.start()], out)
            self._buffer = self._buffer[match.end() :]
            if match.group(1):  # closing tag: ends a block, or is a stray one to drop
                self._thinking = False
                self._skip_ws = True
            else:
                self._thinking = True
        cut = self._buffer.rfind("<")
        if cut >= 0 and _could_be_tag_start(self._buffer[cut:]):
            self._take(self._buffer[:cut], out)
            self._buffer = self._buffer[cut:]
        else:
            self._take(self._buffer, out)
            self._buffer = ""
        return "".join(out)

    def flush(self) -> str:
        """End the stream: release a dangling partial tag as text and drop held whitespace."""
        out: list[str] = []
        self._take(self._buffer, out)
        self._buffer = ""
        self._held_ws = ""
        return "".join(out)

    def _take(self, text: str, out: list[str]) -> None:
        """Classify ``text`` (which contains no tag) in the current state."""
        if self._thinking or not text:
            return
        if self._skip_ws:
            text = text.lstrip()
            if not text:
                return
            self._skip_ws = False
        text = self._held_ws + text
        visible = text.rstrip()
        self._held_ws = text[len(visible) :]
        if visible:
            out.append(visible)
