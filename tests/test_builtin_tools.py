"""The built-in file tools and http_get against real files and a real loopback HTTP server."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from colony.config import Settings
from colony.errors import (
    PostconditionError,
    ToolArgumentsError,
    ToolDeniedError,
    ToolError,
)
from colony.tools.builtin import (
    BUILTIN_TOOLS,
    builtin_registry,
    http_get,
    list_dir,
    read_file,
    search_files,
    write_file,
)
from colony.tools.builtin.http import check_url
from colony.tools.output import keep_head_tail, truncate, truncate_middle
from colony.tools.registry import Tool, ToolContext
from colony.tools.workspace import Workspace


@pytest.fixture
def ctx(settings: Settings, workspace: Path) -> ToolContext:
    return ToolContext(workspace=Workspace(workspace), settings=settings)


def with_limit(ctx: ToolContext, limit: int) -> ToolContext:
    return ToolContext(
        workspace=ctx.workspace, settings=ctx.settings.model_copy(update={"tool_output_limit": limit})
    )


async def call(t: Tool, ctx: ToolContext, **kwargs: object) -> str:
    args = t.args_model(**kwargs)
    result = await t.fn(ctx, args)
    if t.postcondition is not None:
        await t.postcondition(ctx, args, result)
    return result


# --- registry and schemas ----------------------------------------------------------------------


def test_builtin_registry_holds_every_tool_with_strict_schemas() -> None:
    registry = builtin_registry()
    assert registry.names() == [
        "read_file",
        "write_file",
        "patch_file",
        "list_dir",
        "search_files",
        "run_command",
        "http_get",
        "memory_store",
        "memory_recall",
        "cartridge_list",
        "cartridge_test",
        "cartridge_deploy",
        "cartridge_rollback",
        "pay",
    ]
    assert builtin_registry() is not registry  # fresh each time, so callers can add their own
    effects = {t.name: t.effect for t in BUILTIN_TOOLS}
    assert effects == {
        "read_file": "read",
        "write_file": "write",
        "patch_file": "write",
        "list_dir": "read",
        "search_files": "read",
        "run_command": "execute",
        "http_get": "network",
        "memory_store": "write",
        "memory_recall": "read",
        "cartridge_list": "read",
        "cartridge_test": "execute",
        "cartridge_deploy": "write",
        "cartridge_rollback": "write",
        "pay": "network",
    }
    for t in registry:
        assert t.schema["additionalProperties"] is False
        assert t.description and not t.description.startswith(t.name)
        for prop in t.schema["properties"].values():
            assert prop.get("description"), (t.name, prop)
    assert registry.get("write_file").postcondition is not None
    assert registry.get("patch_file").postcondition is not None


def test_argument_models_reject_unknown_fields_and_bad_bounds() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        read_file.args_model(path="a", bogus=1)
    with pytest.raises(ValidationError):
        read_file.args_model(path="a", offset_line=0)
    with pytest.raises(ValidationError):
        list_dir.args_model(max_entries=0)


# --- output helpers ----------------------------------------------------------------------------


def test_truncate_keeps_head_and_fits_the_limit() -> None:
    text = "x" * 1000
    out = truncate(text, 300)
    assert len(out) <= 300
    kept = out.split("\n")[0]
    assert out.endswith(f"…[truncated {1000 - len(kept)} chars]")
    assert truncate("short", 300) == "short"


def test_truncate_middle_keeps_both_ends() -> None:
    text = "HEAD" + "m" * 5000 + "TAIL"
    out = truncate_middle(text, 400)
    assert len(out) <= 400
    assert out.startswith("HEAD") and out.endswith("TAIL")
    assert "…[truncated " in out
    assert keep_head_tail("ab", "cd", 100) == "abcd"
    assert "…[truncated 10 chars]" in keep_head_tail("ab", "cd", 100, dropped=10)


# --- read_file ---------------------------------------------------------------------------------


async def test_read_file_returns_text(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "notes.txt").write_text("one\ntwo\nthree\n")
    assert await call(read_file, ctx, path="notes.txt") == "one\ntwo\nthree\n"


async def test_read_file_line_window(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "n.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    out = await call(read_file, ctx, path="n.txt", offset_line=3, max_lines=2)
    assert out.startswith("line 3\nline 4\n")
    assert "offset_line=5" in out
    assert await call(read_file, ctx, path="n.txt", offset_line=10) == "line 10\n"
    with pytest.raises(ToolError, match="past the end"):
        await call(read_file, ctx, path="n.txt", offset_line=11)


async def test_read_file_truncates_with_marker_and_continuation(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "big.txt").write_text("".join(f"{i:05d} {'z' * 40}\n" for i in range(2000)))
    out = await call(read_file, with_limit(ctx, 1000), path="big.txt")
    assert len(out) <= 1000
    assert out.startswith("00000 ")
    assert "…[truncated " in out
    shown = out.split("\n…[truncated")[0].count("\n")
    assert f"continue with offset_line={shown + 1}" in out
    follow = await call(read_file, with_limit(ctx, 1000), path="big.txt", offset_line=shown + 1)
    assert follow.startswith(f"{shown:05d} ")


async def test_read_file_one_huge_line_is_cut_not_dropped(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "min.js").write_text("a" * 50_000)
    out = await call(read_file, with_limit(ctx, 500), path="min.js")
    assert out.startswith("aaaa") and "…[truncated " in out and len(out) <= 500


async def test_read_file_errors_tell_the_model_what_to_do(ctx: ToolContext, workspace: Path) -> None:
    with pytest.raises(ToolError, match="does not exist; list_dir") as info:
        await call(read_file, ctx, path="notes.txt")
    assert info.value.tool == "read_file"
    (workspace / "dir").mkdir()
    with pytest.raises(ToolError, match="directory"):
        await call(read_file, ctx, path="dir")
    (workspace / "img.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ToolError, match="binary"):
        await call(read_file, ctx, path="img.bin")
    os.mkfifo(workspace / "pipe")
    with pytest.raises(ToolError, match="not a regular file"):
        await call(read_file, ctx, path="pipe")


async def test_read_file_replaces_invalid_utf8_and_reports_empty(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "latin.txt").write_bytes(b"caf\xe9\n")
    assert await call(read_file, ctx, path="latin.txt") == "caf\ufffd\n"
    (workspace / "empty.txt").write_text("")
    assert "is empty" in await call(read_file, ctx, path="empty.txt")


# --- write_file --------------------------------------------------------------------------------


async def test_write_file_creates_directories_and_reports_bytes(ctx: ToolContext, workspace: Path) -> None:
    out = await call(write_file, ctx, path="a/b/c.txt", content="héllo\n")
    assert out == "Wrote 7 bytes to a/b/c.txt (created)."
    assert (workspace / "a/b/c.txt").read_text() == "héllo\n"
    out = await call(write_file, ctx, path="a/b/c.txt", content="bye\n")
    assert "(overwritten)" in out
    assert [p.name for p in (workspace / "a/b").iterdir()] == ["c.txt"]  # no temp files left behind


async def test_write_file_without_create_dirs(ctx: ToolContext, workspace: Path) -> None:
    with pytest.raises(ToolError, match="create_dirs=true"):
        await call(write_file, ctx, path="new/x.txt", content="x", create_dirs=False)
    assert not (workspace / "new").exists()
    (workspace / "d").mkdir()
    with pytest.raises(ToolError, match="is a directory"):
        await call(write_file, ctx, path="d", content="x")


async def test_write_file_keeps_permissions(ctx: ToolContext, workspace: Path) -> None:
    script = workspace / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    await call(write_file, ctx, path="run.sh", content="#!/bin/sh\necho hi\n")
    assert script.stat().st_mode & 0o777 == 0o750


async def test_write_file_ten_megabytes_is_written_and_verified(ctx: ToolContext, workspace: Path) -> None:
    content = ("0123456789abcdef" * 64 + "\n") * 10_000  # ~10 MB
    out = await call(write_file, ctx, path="big.txt", content=content)
    assert f"Wrote {len(content)} bytes" in out
    assert (workspace / "big.txt").stat().st_size == len(content)


async def test_write_postcondition_detects_a_changed_file(ctx: ToolContext, workspace: Path) -> None:
    args = write_file.args_model(path="v.txt", content="expected\n")
    result = await write_file.fn(ctx, args)
    assert write_file.postcondition is not None
    await write_file.postcondition(ctx, args, result)
    (workspace / "v.txt").write_text("tampered\n")
    with pytest.raises(PostconditionError, match="reads back differently"):
        await write_file.postcondition(ctx, args, result)


async def test_write_file_refuses_unencodable_text(ctx: ToolContext, workspace: Path) -> None:
    with pytest.raises(ToolError, match="UTF-8"):
        await call(write_file, ctx, path="s.txt", content="bad \ud800 surrogate")
    assert not (workspace / "s.txt").exists()


# --- list_dir ----------------------------------------------------------------------------------


async def test_list_dir_shows_types_and_sizes(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "main.py").write_text("print(1)\n")
    (workspace / "README.md").write_text("hello")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "HEAD").write_text("ref\n")
    flat = await call(list_dir, ctx)
    lines = flat.splitlines()
    assert lines[0].startswith("./ (3 entries")
    assert any(line.startswith("dir") and line.endswith(" src/") for line in lines)
    assert any(line.startswith("file") and " 5  README.md" in line for line in lines)
    assert any(line.endswith(".git/") for line in lines)  # shown when not recursive
    deep = await call(list_dir, ctx, recursive=True)
    assert "src/main.py" in deep and " 9  src/main.py" in deep
    assert ".git" not in deep


async def test_list_dir_stops_at_max_entries(ctx: ToolContext, workspace: Path) -> None:
    for i in range(30):
        (workspace / f"f{i:02d}.txt").write_text("x")
    out = await call(list_dir, ctx, max_entries=10)
    assert "f09.txt" in out and "f10.txt" not in out
    assert "max_entries=10" in out


async def test_list_dir_errors(ctx: ToolContext, workspace: Path) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        await call(list_dir, ctx, path="nope")
    (workspace / "f.txt").write_text("x")
    with pytest.raises(ToolError, match="use read_file"):
        await call(list_dir, ctx, path="f.txt")
    (workspace / "empty").mkdir()
    assert await call(list_dir, ctx, path="empty") == "empty/ is empty."


# --- search_files ------------------------------------------------------------------------------


@pytest.fixture
def tree(workspace: Path) -> Path:
    (workspace / "src").mkdir()
    (workspace / "src" / "app.py").write_text("import os\n\ndef main():\n    return os.getcwd()\n")
    (workspace / "src" / "util.py").write_text("def helper():\n    return 42  # TODO tidy\n")
    (workspace / "notes.md").write_text("TODO: write docs\nnothing else\n")
    (workspace / "blob.bin").write_bytes(b"TODO\x00\x01\x02")
    (workspace / "huge.txt").write_text("TODO\n" + "x" * (2 * 1024 * 1024 + 10))
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text("TODO in git\n")
    return workspace


async def test_search_literal_across_files(ctx: ToolContext, tree: Path) -> None:
    out = await call(search_files, ctx, pattern="TODO")
    assert out.splitlines() == ["notes.md:1: TODO: write docs", "src/util.py:2:     return 42  # TODO tidy"]


async def test_search_regex_glob_path_and_case(ctx: ToolContext, tree: Path) -> None:
    out = await call(search_files, ctx, pattern=r"def \w+\(\)", regex=True, glob="*.py")
    assert out.splitlines() == ["src/app.py:3: def main():", "src/util.py:1: def helper():"]
    out = await call(search_files, ctx, pattern="todo", ignore_case=True, path="src")
    assert out == "src/util.py:2:     return 42  # TODO tidy"
    out = await call(search_files, ctx, pattern="os", path="src/app.py")
    assert out.splitlines()[0] == "src/app.py:1: import os"
    # a literal search treats regex syntax as text
    assert (await call(search_files, ctx, pattern="getcwd()")).startswith("src/app.py:4:")


async def test_search_limits_and_errors(ctx: ToolContext, tree: Path) -> None:
    out = await call(search_files, ctx, pattern="o", max_results=2)
    assert len([line for line in out.splitlines() if not line.startswith("[")]) == 2
    assert "max_results=2" in out
    with pytest.raises(ToolError, match="Invalid regular expression"):
        await call(search_files, ctx, pattern="(unclosed", regex=True)
    with pytest.raises(ToolError, match="does not exist"):
        await call(search_files, ctx, pattern="x", path="missing")
    assert (await call(search_files, ctx, pattern="zzz-not-here")).startswith("No matches for 'zzz-not-here'")


# --- http_get ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/ok": (200, {"Content-Type": "text/plain; charset=utf-8"}, "héllo from loopback".encode()),
            "/latin": (200, {"Content-Type": "text/plain; charset=latin-1"}, "caf\xe9".encode("latin-1")),
            "/missing": (404, {"Content-Type": "text/plain"}, b"no such page"),
            "/big": (200, {"Content-Type": "text/plain"}, b"A" * 5000 + b"Z" * 5000),
            "/png": (200, {"Content-Type": "image/png"}, b"\x89PNG\x00\x00"),
            "/to-ok": (302, {"Location": "/ok"}, b""),
            "/to-evil": (302, {"Location": "http://evil.example/steal"}, b""),
            "/to-userinfo": (302, {"Location": "http://127.0.0.1@evil.example/"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
        }
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.hits  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


async def test_http_get_loopback(ctx: ToolContext, server: tuple[str, list[str]]) -> None:
    base, _ = server
    out = await call(http_get, ctx, url=f"{base}/ok")
    assert out == "status: 200 OK\ncontent-type: text/plain; charset=utf-8\n--- body ---\nhéllo from loopback"
    assert (await call(http_get, ctx, url=f"{base}/latin")).endswith("café")
    assert (await call(http_get, ctx, url=f"{base}/missing")).startswith("status: 404 Not Found")
    assert "binary body of 6 bytes" in await call(http_get, ctx, url=f"{base}/png")


async def test_http_get_cuts_the_body(ctx: ToolContext, server: tuple[str, list[str]]) -> None:
    base, _ = server
    out = await call(http_get, ctx, url=f"{base}/big", max_bytes=100)
    assert "A" * 100 in out and "Z" not in out and "max_bytes=100" in out
    out = await call(http_get, with_limit(ctx, 600), url=f"{base}/big")
    assert len(out) <= 600 and "…[truncated " in out


async def test_http_get_follows_an_allowed_redirect(ctx: ToolContext, server: tuple[str, list[str]]) -> None:
    base, hits = server
    out = await call(http_get, ctx, url=f"{base}/to-ok")
    assert "héllo from loopback" in out and f"url: {base}/ok" in out
    assert hits == ["/to-ok", "/ok"]


async def test_http_get_refuses_redirects_off_the_allowlist(
    ctx: ToolContext, server: tuple[str, list[str]]
) -> None:
    base, hits = server
    with pytest.raises(ToolDeniedError, match=r"evil\.example"):
        await call(http_get, ctx, url=f"{base}/to-evil")
    with pytest.raises(ToolDeniedError, match="user info"):
        await call(http_get, ctx, url=f"{base}/to-userinfo")
    with pytest.raises(ToolError, match="more than 3"):
        await call(http_get, ctx, url=f"{base}/loop")
    assert hits.count("/loop") == 4  # the original request and three redirects, then stop


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://example.com/", ToolDeniedError),
        ("http://127.0.0.1@evil.com/", ToolDeniedError),
        ("http://127.0.0.1:80@evil.com/", ToolDeniedError),
        ("http://user:pw@127.0.0.1/", ToolDeniedError),
        ("http://127.0.0.1\\@evil.com/", ToolArgumentsError),
        ("http://127.0.0.1.evil.com/", ToolDeniedError),
        ("ftp://127.0.0.1/file", ToolArgumentsError),
        ("file:///etc/passwd", ToolArgumentsError),
        ("http://127.0.0.1 /", ToolArgumentsError),
    ],
)
async def test_http_get_refuses_other_hosts_and_tricks(
    ctx: ToolContext, url: str, error: type[ToolError]
) -> None:
    with pytest.raises(error):
        await call(http_get, ctx, url=url)


def test_check_url_accepts_allowed_hosts_in_any_spelling() -> None:
    allowed = ["127.0.0.1", "localhost", "::1"]
    assert check_url("http://LOCALHOST:8080/x", allowed).port == 8080
    assert check_url("https://[::1]/", allowed).host == "::1"
    assert check_url("http://localhost./", allowed).path == "/"


async def test_http_get_unreachable_port_is_a_tool_error(ctx: ToolContext) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ToolError, match="Could not fetch"):
        await call(http_get, ctx, url=f"http://127.0.0.1:{port}/")
