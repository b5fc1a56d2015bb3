"""patch_file: valid diffs apply, everything else is a ToolError and leaves the file untouched."""

from __future__ import annotations

import asyncio
import difflib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from colony.config import Settings
from colony.errors import PostconditionError, ToolError
from colony.tools.builtin import patch_file
from colony.tools.builtin.patch import apply_unified_diff
from colony.tools.registry import ToolContext
from colony.tools.workspace import Workspace

ORIGINAL = "".join(f"line {i}\n" for i in range(1, 21))


@pytest.fixture
def ctx(settings: Settings, workspace: Path) -> ToolContext:
    return ToolContext(workspace=Workspace(workspace), settings=settings)


@pytest.fixture
def target(workspace: Path) -> Path:
    path = workspace / "f.txt"
    path.write_text(ORIGINAL)
    return path


def read(path: Path) -> str:
    return path.read_text()


def write(path: Path, text: str) -> None:
    path.write_text(text)


async def patch(ctx: ToolContext, diff: str, path: str = "f.txt") -> str:
    args = patch_file.args_model(path=path, diff=diff)
    result = await patch_file.fn(ctx, args)
    assert patch_file.postcondition is not None
    await patch_file.postcondition(ctx, args, result)
    return result


def make_diff(old: str, new: str, name: str = "f.txt", context: int = 3) -> str:
    """A unified diff as `diff -u` writes it, including the no-newline markers difflib leaves out."""

    def split(text: str) -> list[str]:
        parts = [line + "\n" for line in text.split("\n")]
        parts[-1] = parts[-1][:-1]
        return parts if parts[-1] else parts[:-1]

    out = []
    for line in difflib.unified_diff(split(old), split(new), f"a/{name}", f"b/{name}", n=context):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def edited(*changes: tuple[int, str | None]) -> str:
    lines = ORIGINAL.splitlines(keepends=True)
    for index, text in sorted(changes, reverse=True):
        if text is None:
            del lines[index]
        else:
            lines[index] = text
    return "".join(lines)


# --- valid diffs -------------------------------------------------------------------------------


async def test_modify_a_line(ctx: ToolContext, target: Path) -> None:
    new = edited((4, "line five, edited\n"))
    out = await patch(ctx, make_diff(ORIGINAL, new))
    assert read(target) == new
    assert out.startswith("Patched f.txt: 1 hunk(s) applied, +1 -1 lines.")


async def test_add_and_remove_lines_in_several_hunks(ctx: ToolContext, target: Path) -> None:
    lines = ORIGINAL.splitlines(keepends=True)
    new_lines = ["header\n", *lines[:2], *lines[3:15], "inserted a\n", "inserted b\n", *lines[15:]]
    new = "".join(new_lines)
    diff = make_diff(ORIGINAL, new, context=2)
    assert diff.count("@@ -") == 2
    out = await patch(ctx, diff)
    assert read(target) == new
    assert "2 hunk(s) applied, +3 -1 lines" in out


async def test_diff_without_file_headers(ctx: ToolContext, target: Path) -> None:
    diff = "@@ -2,3 +2,3 @@\n line 2\n-line 3\n+LINE THREE\n line 4\n"
    await patch(ctx, diff)
    assert read(target) == ORIGINAL.replace("line 3\n", "LINE THREE\n")


async def test_git_style_diff_with_prefixes(ctx: ToolContext, target: Path) -> None:
    diff = (
        "diff --git a/f.txt b/f.txt\nindex 83db48f..bf269f4 100644\n--- a/f.txt\n+++ b/f.txt\n"
        "@@ -19,2 +19,3 @@ some section\n line 19\n line 20\n+line 21\n"
    )
    await patch(ctx, diff)
    assert read(target) == ORIGINAL + "line 21\n"


async def test_no_newline_markers(ctx: ToolContext, workspace: Path) -> None:
    path = workspace / "n.txt"
    path.write_text("a\nb")
    await patch(ctx, make_diff("a\nb", "a\nb\n", "n.txt"), "n.txt")
    assert read(path) == "a\nb\n"
    await patch(ctx, make_diff("a\nb\n", "a\nc", "n.txt"), "n.txt")
    assert read(path) == "a\nc"
    # a model that forgets the marker: the file keeps its missing final newline
    await patch(ctx, "@@ -1,2 +1,2 @@\n a\n-c\n+d\n", "n.txt")
    assert read(path) == "a\nd"


async def test_lenient_forms_models_write(ctx: ToolContext, target: Path) -> None:
    # wrong counts, shifted line numbers, a stripped blank context line and a Markdown fence
    write(target, "intro\n\nbody\nend\n")
    diff = "```diff\n--- f.txt\n+++ f.txt\n@@ -7,9 +7,9 @@\n intro\n\n-body\n+BODY\n end\n```\n"
    out = await patch(ctx, diff)
    assert read(target) == "intro\n\nBODY\nend\n"
    assert "offset -6" in out


async def test_unnumbered_hunk_is_placed_by_its_context(ctx: ToolContext, target: Path) -> None:
    await patch(ctx, "@@\n line 9\n-line 10\n+line ten\n line 11\n")
    assert "line ten\n" in read(target)
    write(target, "x\ny\nx\ny\n")
    with pytest.raises(ToolError, match="matches the file at lines 1, 3"):
        await patch(ctx, "@@\n x\n-y\n+z\n")
    assert read(target) == "x\ny\nx\ny\n"


async def test_crlf_file_keeps_its_line_endings(ctx: ToolContext, workspace: Path) -> None:
    path = workspace / "win.txt"
    path.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    await patch(ctx, "@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n", "win.txt")
    assert path.read_bytes() == b"one\r\nTWO\r\nthree\r\n"


async def test_sql_comment_lines_are_not_headers(ctx: ToolContext, workspace: Path) -> None:
    path = workspace / "q.sql"
    path.write_text("-- old: comment\nSELECT 1;\n")
    await patch(
        ctx,
        "--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,2 @@\n--- old: comment\n+++ new: comment\n SELECT 1;\n",
        "q.sql",
    )
    assert read(path) == "++ new: comment\nSELECT 1;\n"


async def test_create_a_file_from_dev_null(ctx: ToolContext, workspace: Path) -> None:
    diff = "--- /dev/null\n+++ b/new/made.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n"
    await patch(ctx, diff, "new/made.txt")
    assert (workspace / "new" / "made.txt").read_text() == "hello\nworld\n"


async def test_non_utf8_bytes_elsewhere_survive(ctx: ToolContext, workspace: Path) -> None:
    path = workspace / "mixed.txt"
    path.write_bytes(b"caf\xe9\nkeep\nchange\n")
    await patch(ctx, "@@ -2,2 +2,2 @@\n keep\n-change\n+changed\n", "mixed.txt")
    assert path.read_bytes() == b"caf\xe9\nkeep\nchanged\n"


# --- refused diffs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("diff", "message"),
    [
        ("this is not a diff at all", "No hunks found"),
        ("@@ -1,3 +1\n line 1\n", "malformed"),
        ("@@ -1,3 +1,3\n line 1\n", "malformed"),
        (
            "@@ -1,2 +1,2 @@\n line 1\n-line 99\n+x\n",
            r"Hunk #1 \(@@ -1,2 \+1,2 @@\) does not apply: line 2 should be 'line 99'",
        ),
        ("@@ -1,2 +1,2 @@\n line 1\n-line 2\n+x\n@@ -9,2 +9,2 @@\n-nope\n+y\n line 10\n", "Hunk #2"),
        ("@@ -1,2 +1,2 @@\n line 1\nline 2 without a prefix\n", "does not start with"),
        ("--- a/other.txt\n+++ b/other.txt\n@@ -1 +1 @@\n-line 1\n+x\n", "for other.txt"),
        ("--- a/f.txt\n+++ /dev/null\n@@ -1,20 +0,0 @@\n-line 1\n", "deletes the file"),
        (
            "--- a/f.txt\n+++ b/f.txt\n@@ -1 +1 @@\n-line 1\n+x\n--- a/g.txt\n+++ b/g.txt\n@@ -1 +1 @@\n-a\n+b\n",
            "more than one file",
        ),
        ("@@ -30,0 +31,1 @@\n+after the end\n", "inserts after line 30"),
        ("@@ -1,2 +1,2 @@\n line 1\n-line  2\n+x\n", "whitespace"),
        ("Binary files a/f.txt and b/f.txt differ\n", "binary"),
        ("@@ -1 +1 @@\n-line 1\x00\n+x\n", "NUL"),
    ],
)
async def test_bad_diffs_raise_tool_error_and_leave_the_file(
    ctx: ToolContext, target: Path, diff: str, message: str
) -> None:
    with pytest.raises(ToolError, match=message) as info:
        await patch(ctx, diff)
    assert info.value.tool == "patch_file"
    assert read(target) == ORIGINAL


async def test_missing_and_binary_targets(ctx: ToolContext, workspace: Path) -> None:
    with pytest.raises(ToolError, match="write_file to create it"):
        await patch(ctx, "@@ -1 +1 @@\n-a\n+b\n", "absent.txt")
    (workspace / "b.bin").write_bytes(b"a\x00b\n")
    with pytest.raises(ToolError, match="binary"):
        await patch(ctx, "@@ -1 +1 @@\n-a\n+b\n", "b.bin")


async def test_postcondition_notices_a_concurrent_change(ctx: ToolContext, target: Path) -> None:
    args = patch_file.args_model(path="f.txt", diff="@@ -1 +1 @@\n-line 1\n+first\n")
    result = await patch_file.fn(ctx, args)
    write(target, "someone else\n")
    assert patch_file.postcondition is not None
    with pytest.raises(PostconditionError):
        await patch_file.postcondition(ctx, args, result)


# --- properties --------------------------------------------------------------------------------

_HEADERS = st.builds(lambda a, b, c, d: f"@@ -{a},{b} +{c},{d} @@", *(st.integers(0, 25) for _ in range(4)))
_DIFF_LINE = st.one_of(
    _HEADERS,
    st.sampled_from(
        [
            "@@",
            "@@ @@",
            "--- a/f.txt",
            "+++ b/f.txt",
            "--- /dev/null",
            "+++ /dev/null",
            "diff --git a/f.txt b/f.txt",
            "\\ No newline at end of file",
            "",
            "```",
            "@@ -1",
        ]
    ),
    st.builds(lambda p, n: f"{p}line {n}", st.sampled_from([" ", "-", "+"]), st.integers(0, 25)),
    st.text(max_size=20),
)
_DIFF_TEXT = st.one_of(
    st.text(min_size=1), st.lists(_DIFF_LINE, min_size=1, max_size=25).map("\n".join).filter(bool)
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(diff=_DIFF_TEXT)
def test_patch_file_only_ever_raises_tool_error(diff: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.txt").write_text(ORIGINAL)
        ctx = ToolContext(workspace=Workspace(root), settings=Settings(workspace=root))
        try:
            result = asyncio.run(patch(ctx, diff))
        except ToolError:
            assert (root / "f.txt").read_text() == ORIGINAL
        else:
            assert result.startswith("Patched ")


_LINE = st.one_of(
    st.sampled_from(
        ["", "a", "b", "-- x", "+", " ", "@@ -1 +1 @@", "\\ no", "\x0c", "x\u2028y", "tab\there"]
    ),
    st.text(st.characters(exclude_characters="\n\r\x00", exclude_categories=["Cs", "Co"]), max_size=8),
)
_TEXT = st.builds(
    lambda lines, eol: "\n".join(lines) + ("\n" if eol and lines else ""),
    st.lists(_LINE, max_size=12),
    st.booleans(),
)


@hsettings(max_examples=400, deadline=None)
@given(old=_TEXT, new=_TEXT, context=st.integers(0, 3))
def test_applying_a_generated_diff_gives_the_new_text(old: str, new: str, context: int) -> None:
    diff = make_diff(old, new, context=context)
    if not diff:
        return
    assert apply_unified_diff(old, diff).text == new
