"""Thinking-block stripping: the whole-text function and the streaming filter agree."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colony.llm.thinking import ThinkingFilter, strip_thinking


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain answer", "plain answer"),
        ("  padded \n", "padded"),
        ("<think>plan</think>Answer", "Answer"),
        ("<think>\nplan\n</think>\n\nAnswer", "Answer"),
        ("<thinking>plan</thinking> Answer", "Answer"),
        ("<THINK>plan</Think>Answer", "Answer"),
        ("Hi <think>x</think> there", "Hi there"),
        ("Hi\n<think>x</think>\nthere", "Hi\nthere"),
        ("a<think>1</think>b<think>2</think>c", "abc"),
        ("<think>one\ntwo\nthree</think>multi\nline", "multi\nline"),
        ("Answer first <think>then an unfinished thought", "Answer first"),
        ("<think>only thinking, cut off", ""),
        ("<think>only thinking</think>", ""),
        ("reasoning the template opened\n</think>\n\nAnswer", "Answer"),
        ("<think>a <think> b</think> c", "c"),
        ("<think>mixed names</thinking>ok", "ok"),
        ("<think>x</think>a</think> b", "ab"),
        ("x < y and <b>bold</b> <thin", "x < y and <b>bold</b> <thin"),
        ("<thinker>not a tag</thinker>", "<thinker>not a tag</thinker>"),
    ],
)
def test_strip_thinking(text: str, expected: str) -> None:
    assert strip_thinking(text) == expected


def run_filter(chunks: list[str], *, open_at_start: bool = False) -> tuple[list[str], str]:
    f = ThinkingFilter(open_at_start=open_at_start)
    return [f.feed(chunk) for chunk in chunks], f.flush()


def test_filter_handles_tags_split_across_chunks() -> None:
    outputs, tail = run_filter(["<thi", "nk>secret</th", "ink>visible"])
    assert outputs == ["", "", "visible"]
    assert tail == ""


def test_filter_releases_plain_text_immediately() -> None:
    outputs, tail = run_filter(["Hello", " world", "!"])
    assert outputs == ["Hello", " world", "!"]
    assert tail == ""


def test_filter_holds_only_a_possible_tag_prefix() -> None:
    f = ThinkingFilter()
    assert f.feed("a < b <th") == "a < b"
    assert f.feed("e end") == " <the end"
    assert f.flush() == ""


def test_filter_releases_dangling_partial_tag_at_flush() -> None:
    outputs, tail = run_filter(["see <think"])
    assert outputs == ["see"]
    assert tail == " <think"


def test_filter_reports_thinking_state() -> None:
    f = ThinkingFilter()
    f.feed("<think>hmm")
    assert f.thinking
    f.feed("</think>done")
    assert not f.thinking


def test_filter_open_at_start_for_templates_that_open_the_block() -> None:
    outputs, tail = run_filter(["I should list ", "files.</thi", "nk>\n\nHere they are."], open_at_start=True)
    assert "".join(outputs) + tail == "Here they are."


def test_filter_without_open_at_start_drops_only_the_stray_tag() -> None:
    # A stream cannot retract released text; this is why open_at_start exists.
    outputs, tail = run_filter(["reasoning</think> answer"])
    assert "".join(outputs) + tail == "reasoninganswer"


# Text built from fragments that exercise tags, near-tags, case and whitespace.
_FRAGMENTS = st.sampled_from(
    [
        "<think>", "</think>", "<thinking>", "</thinking>", "<THINK>", "</Thinking>",
        "<", "</", "<th", "<thin", "think>", "ing>", ">", "<b>", "<thinker>",
        " ", "\n", "\t", "\u00a0", "\u2003", "a", "b", "word", "K", "\u212a", "İ",
    ]
)  # fmt: skip
_TEXTS = st.one_of(st.lists(_FRAGMENTS, max_size=30).map("".join), st.text(max_size=60))
_FIRST_TAG = re.compile(r"(?ai:<(/?)think(?:ing)?>)")


@st.composite
def chunked(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(_TEXTS)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in itertools.pairwise(bounds)]


@given(chunked())
def test_filter_matches_strip_thinking_for_any_chunking(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    first = _FIRST_TAG.search(text)
    # The one case a stream cannot infer: the caller states it with open_at_start.
    template_opened = first is not None and bool(first.group(1))
    outputs, tail = run_filter(chunks, open_at_start=template_opened)
    assert "".join(outputs) + tail == strip_thinking(text)


@given(chunked())
def test_open_at_start_equals_a_prepended_opening_tag(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    outputs, tail = run_filter(chunks, open_at_start=True)
    assert "".join(outputs) + tail == strip_thinking("<think>" + text)


@given(_TEXTS)
def test_strip_thinking_output_is_trimmed_and_never_longer(text: str) -> None:
    visible = strip_thinking(text)
    assert visible == visible.strip()
    assert len(visible) <= len(text)
    if _FIRST_TAG.search(text) is None:
        assert visible == text.strip()
