"""The diary's no-shared-word check: `evals.memory._text`'s content words, plus raw tokens.

`shared_content_words` ignores a long stopword list ("after", "every", "long", "still", ...) that
a keyword index may still match, since FTS5 drops few or no stopwords. A question that must not be
answerable by keywords (a paraphrase, or the memories after a path's first) therefore also shares
no raw token with its memory beyond the plain function words below, which every keyword search
ignores.
"""

from __future__ import annotations

import re

from evals.memory._text import shared_content_words

__all__ = ["FUNCTION_WORDS", "keyword_free", "shared_tokens"]

_FUNCTION_WORD_TEXT = """
    a an the and or but if of to in on at by for with from as is are was were be been do does did have has had
    i me my we our you your he she it its they them their this that what which who whose when where why how not
    no so can could should would will s t
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORD_TEXT.split())
_TOKEN = re.compile(r"\w+")


def shared_tokens(a: str, b: str) -> list[str]:
    """The lower-cased tokens (as a unicode61 tokenizer splits them) both texts hold, function words aside."""
    def tokens(text: str) -> set[str]:
        return {t for t in _TOKEN.findall(text.lower().replace("_", " ")) if t not in FUNCTION_WORDS}

    return sorted(tokens(a) & tokens(b))


def keyword_free(question: str, text: str) -> bool:
    """True when nothing but meaning links `question` to `text`: no content word, no searchable token shared."""
    return not shared_content_words(question, text) and not shared_tokens(question, text)
