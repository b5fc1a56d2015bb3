"""Workspace confinement, seen through the built-in tools: nothing outside the root is touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from colony.config import Settings
from colony.errors import ToolError, WorkspaceError
from colony.tools.builtin import list_dir, read_file, search_files, write_file
from colony.tools.registry import Tool, ToolContext
from colony.tools.workspace import Workspace


@pytest.fixture
def ws(workspace: Path) -> Path:
    """The suite's per-test workspace, with a secret file next to it (outside the root)."""
    outside = workspace.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n")
    return workspace


@pytest.fixture
def ctx(settings: Settings, ws: Path) -> ToolContext:
    return ToolContext(workspace=Workspace(ws), settings=settings)


async def call(t: Tool, ctx: ToolContext, **kwargs: object) -> str:
    args = t.args_model(**kwargs)
    result = await t.fn(ctx, args)
    if t.postcondition is not None:
        await t.postcondition(ctx, args, result)
    return result


def test_resolve_keeps_relative_paths_inside(ws: Path) -> None:
    workspace = Workspace(ws)
    assert workspace.resolve("a/b.txt") == ws.resolve() / "a" / "b.txt"
    assert workspace.resolve(".") == ws.resolve()
    assert workspace.resolve("a/../b.txt") == ws.resolve() / "b.txt"
    assert workspace.resolve(str(ws / "inside.txt")) == ws.resolve() / "inside.txt"


@pytest.mark.parametrize(
    "path", ["../outside/secret.txt", "a/../../outside/secret.txt", "..", "/etc/passwd", "~/x"]
)
def test_resolve_refuses_escapes(ws: Path, path: str) -> None:
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        Workspace(ws).resolve(path, tool="t")


@pytest.mark.parametrize("path", ["", "   ", "a\x00b"])
def test_resolve_refuses_empty_and_nul(ws: Path, path: str) -> None:
    with pytest.raises(WorkspaceError):
        Workspace(ws).resolve(path)


async def test_read_file_refuses_dotdot_and_absolute(ctx: ToolContext) -> None:
    with pytest.raises(WorkspaceError):
        await call(read_file, ctx, path="../outside/secret.txt")
    with pytest.raises(WorkspaceError) as info:
        await call(read_file, ctx, path="/etc/passwd")
    assert info.value.tool == "read_file"
    assert "COLONY_WORKSPACE" in str(info.value)


async def test_write_file_refuses_escape_and_leaves_outside_alone(ctx: ToolContext, ws: Path) -> None:
    secret = ws.parent / "outside" / "secret.txt"
    with pytest.raises(WorkspaceError):
        await call(write_file, ctx, path="../outside/secret.txt", content="pwned")
    with pytest.raises(WorkspaceError):
        await call(write_file, ctx, path=str(secret), content="pwned")
    assert secret.read_text() == "TOP SECRET\n"


async def test_symlink_to_outside_file_is_refused(ctx: ToolContext, ws: Path) -> None:
    secret = ws.parent / "outside" / "secret.txt"
    (ws / "link.txt").symlink_to(secret)
    with pytest.raises(WorkspaceError):
        await call(read_file, ctx, path="link.txt")
    with pytest.raises(WorkspaceError):
        await call(write_file, ctx, path="link.txt", content="pwned")
    assert secret.read_text() == "TOP SECRET\n"


async def test_symlinked_directory_pointing_out_is_refused_everywhere(ctx: ToolContext, ws: Path) -> None:
    (ws / "door").symlink_to(ws.parent / "outside", target_is_directory=True)
    (ws / "own.txt").write_text("mine\n")
    with pytest.raises(WorkspaceError):
        await call(read_file, ctx, path="door/secret.txt")
    with pytest.raises(WorkspaceError):
        await call(list_dir, ctx, path="door")
    with pytest.raises(WorkspaceError):
        await call(search_files, ctx, pattern="SECRET", path="door")
    listing = await call(list_dir, ctx, path=".", recursive=True)
    assert "door -> (outside the workspace" in listing
    assert "secret.txt" not in listing
    found = await call(search_files, ctx, pattern="SECRET")
    assert found.startswith("No matches")


async def test_symlink_inside_the_workspace_is_followed(ctx: ToolContext, ws: Path) -> None:
    (ws / "real.txt").write_text("real content\n")
    (ws / "alias.txt").symlink_to(ws / "real.txt")
    assert await call(read_file, ctx, path="alias.txt") == "real content\n"
    await call(write_file, ctx, path="alias.txt", content="changed\n")
    assert (ws / "real.txt").read_text() == "changed\n"
    assert (ws / "alias.txt").is_symlink()


async def test_symlink_loop_is_a_clean_error(ctx: ToolContext, ws: Path) -> None:
    (ws / "a").symlink_to(ws / "b")
    (ws / "b").symlink_to(ws / "a")
    with pytest.raises(ToolError):
        await call(read_file, ctx, path="a")
    with pytest.raises(ToolError):
        await call(write_file, ctx, path="a/x.txt", content="x")
    listing = await call(list_dir, ctx, path=".", recursive=True)
    assert "a -> " in listing
    assert (await call(search_files, ctx, pattern="x")).startswith("No matches")


async def test_nul_in_path_is_refused(ctx: ToolContext) -> None:
    with pytest.raises(WorkspaceError, match="NUL"):
        await call(read_file, ctx, path="notes\x00.txt")
    with pytest.raises(WorkspaceError, match="NUL"):
        await call(write_file, ctx, path="notes\x00.txt", content="x")


async def test_unicode_file_names_round_trip(ctx: ToolContext, ws: Path) -> None:
    name = "données/résumé-日本語 ✓.txt"
    await call(write_file, ctx, path=name, content="ünïcödé\n")
    assert (ws / name).read_text(encoding="utf-8") == "ünïcödé\n"
    assert await call(read_file, ctx, path=name) == "ünïcödé\n"
    listing = await call(list_dir, ctx, path="données")
    assert "résumé-日本語 ✓.txt" in listing
    hits = await call(search_files, ctx, pattern="cöd")
    assert hits == f"{name}:1: ünïcödé"


def test_workspace_relative_display(ws: Path) -> None:
    workspace = Workspace(ws)
    assert workspace.relative(ws / "a" / "b.txt") == "a/b.txt"
    assert workspace.relative(ws) == "."
    assert os.sep not in workspace.relative(ws / "x") or os.sep == "/"
