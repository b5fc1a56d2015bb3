"""run_command with real subprocesses: policy, confinement, timeouts, output bounds, environment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from colony.config import Settings
from colony.errors import ToolArgumentsError, ToolDeniedError, ToolError, ToolTimeoutError, WorkspaceError
from colony.tools.builtin import classify_command, parse_command, run_command
from colony.tools.builtin.commands import blocklist_match, find_shell_syntax, scrubbed_env
from colony.tools.registry import ToolContext
from colony.tools.workspace import Workspace


@pytest.fixture
def ctx(settings: Settings, workspace: Path) -> ToolContext:
    return ToolContext(workspace=Workspace(workspace), settings=settings)


def with_settings(ctx: ToolContext, **update: object) -> ToolContext:
    return ToolContext(workspace=ctx.workspace, settings=ctx.settings.model_copy(update=update))


async def run(ctx: ToolContext, command: str, **kwargs: object) -> str:
    return await run_command.fn(ctx, run_command.args_model(command=command, **kwargs))


def processes_with_argument(argument: str) -> list[int]:
    """PIDs of live (non-zombie) processes that have ``argument`` as one of their argv entries."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if argument.encode() in argv and state != "Z":
            found.append(int(entry.name))
    return found


async def poll(check: Callable[[], bool], within_s: float) -> bool:
    """Poll ``check`` until it holds or time runs out (process state has no event to wait on)."""
    for _ in range(int(within_s / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


async def wait_until_gone(argument: str, within_s: float = 3.0) -> list[int]:
    await poll(lambda: not processes_with_argument(argument), within_s)
    return processes_with_argument(argument)


# --- happy path --------------------------------------------------------------------------------


async def test_runs_a_program_and_reports_output(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "notes.txt").write_text("alpha\nbeta\n")
    out = await run(ctx, "cat notes.txt")
    assert out == "exit_code: 0\n--- stdout ---\nalpha\nbeta\n\n--- stderr ---\n"


async def test_non_zero_exit_is_a_result_not_an_exception(ctx: ToolContext) -> None:
    out = await run(ctx, "python3 -c \"import sys; sys.stderr.write('boom'); sys.exit(3)\"")
    assert out.startswith("exit_code: 3\n")
    assert out.endswith("--- stderr ---\nboom")
    assert (await run(ctx, "false")).startswith("exit_code: 1\n")


async def test_quoted_metacharacters_are_plain_arguments(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "t.txt").write_text("a|b; c && d > e\n")
    out = await run(ctx, "grep -F 'a|b; c && d > e' t.txt")
    assert out.startswith("exit_code: 0\n--- stdout ---\na|b; c && d > e\n")


async def test_cwd_is_confined_to_the_workspace(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "sub").mkdir()
    out = await run(ctx, "pwd", cwd="sub")
    assert f"--- stdout ---\n{(workspace / 'sub').resolve()}\n" in out
    with pytest.raises(WorkspaceError):
        await run(ctx, "pwd", cwd="..")
    with pytest.raises(WorkspaceError):
        await run(ctx, "pwd", cwd="/tmp")
    (workspace / "f.txt").write_text("x")
    with pytest.raises(ToolError, match="not a directory"):
        await run(ctx, "pwd", cwd="f.txt")


async def test_path_arguments_outside_the_workspace_are_refused(ctx: ToolContext, workspace: Path) -> None:
    for command in ("cat /etc/passwd", "ls ..", "ls ../..", "cat ~/.bashrc", "grep --file=/etc/passwd x"):
        with pytest.raises(ToolDeniedError, match="outside the workspace"):
            await run(ctx, command)
    (workspace / "in.txt").write_text("inside\n")
    assert "inside" in await run(ctx, f"cat {workspace / 'in.txt'}")


# --- policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["ls | wc -l", "ls; pwd", "ls && pwd", "ls || pwd", "echo hi > out.txt", "cat < in.txt", "echo `id`",
     "echo $(id)", "echo \"$(id)\"", "echo $HOME", "echo ${HOME}", "sleep 5 &", "ls\npwd"],
)
async def test_shell_syntax_is_refused_with_advice(ctx: ToolContext, workspace: Path, command: str) -> None:
    with pytest.raises(ToolArgumentsError, match="separate run_command calls"):
        await run(ctx, command)
    assert not (workspace / "out.txt").exists()
    assert classify_command(command, ctx.settings) == "blocked"


@pytest.mark.parametrize(
    "command", ["git push --force", "git push origin main --force", "git push -f", "sudo ls", "python3 -m sudo"]
)
async def test_blocklist(ctx: ToolContext, command: str) -> None:
    with pytest.raises(ToolDeniedError, match="blocklist"):
        await run(ctx, command)
    assert classify_command(command, ctx.settings) == "blocked"


async def test_allowlist(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "keep.txt").write_text("x")
    with pytest.raises(ToolDeniedError, match="not on the command allowlist"):
        await run(ctx, "rm keep.txt")
    assert (workspace / "keep.txt").exists()
    with pytest.raises(ToolDeniedError, match="bare program name"):
        await run(ctx, "/bin/ls")
    missing = with_settings(ctx, command_allowlist=["definitely-not-installed-colony"])
    with pytest.raises(ToolError, match="not installed"):
        await run(missing, "definitely-not-installed-colony --help")


async def test_a_program_in_the_workspace_cannot_pose_as_an_allowed_one(
    ctx: ToolContext, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = workspace / "bin" / "ls"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho fake\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    with pytest.raises(ToolDeniedError, match="inside the workspace"):
        await run(ctx, "ls")


def test_classify_command(settings: Settings) -> None:
    assert classify_command("ls -la", settings) == "allowed"
    assert classify_command("git status", settings) == "allowed"
    assert classify_command("rm -rf build", settings) == "unknown"
    assert classify_command("/bin/ls", settings) == "unknown"
    assert classify_command("sudo ls", settings) == "blocked"
    assert classify_command("echo 'unterminated", settings) == "blocked"
    assert classify_command("find . -exec rm -rf / ;", settings) == "blocked"


def test_parse_command_and_helpers() -> None:
    assert parse_command("grep -n 'two words' \"f g.txt\"") == ["grep", "-n", "two words", "f g.txt"]
    with pytest.raises(ToolArgumentsError, match="quotes"):
        parse_command("echo 'open")
    with pytest.raises(ToolArgumentsError, match="empty"):
        parse_command("   ")
    assert find_shell_syntax("grep 'a|b' f") is None
    assert find_shell_syntax("grep \"cost: $5\" f") is None
    assert find_shell_syntax("grep 'x$' f") is None
    assert find_shell_syntax("a && b") == "&&"
    assert blocklist_match(["env", "sudo", "ls"], ["sudo"]) == "sudo"
    assert blocklist_match(["/usr/bin/curl", "x"], ["curl"]) == "curl"
    assert blocklist_match(["git", "push", "origin"], ["git push --force"]) is None


# --- environment, output, time -----------------------------------------------------------------


async def test_secret_looking_variables_do_not_reach_the_child(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOO_TOKEN", "hunter2")
    monkeypatch.setenv("MY_API_KEY", "sk-nope")
    monkeypatch.setenv("FOO_PLAIN", "visible")
    code = "import os; print(os.environ.get('FOO_TOKEN', 'absent'), os.environ.get('MY_API_KEY', 'absent'), os.environ.get('FOO_PLAIN'))"
    out = await run(ctx, f'python3 -c "{code}"')
    assert "--- stdout ---\nabsent absent visible\n" in out
    assert "hunter2" not in out
    env = scrubbed_env({"PATH": "relative:/usr/bin::", "DB_PASSWORD": "x", "HOME": "/root"})
    assert env == {"PATH": "/usr/bin", "HOME": "/root"}


async def test_long_output_keeps_head_and_tail(ctx: ToolContext) -> None:
    small = with_settings(ctx, tool_output_limit=500)
    out = await run(small, "python3 -c \"print('HEAD' + 'x' * 200000 + 'TAIL')\"")
    assert len(out) <= 500
    assert "--- stdout ---\nHEAD" in out and "TAIL\n" in out
    assert "…[truncated " in out
    assert out.startswith("exit_code: 0\n")


async def test_a_program_killed_by_a_signal_reports_the_signal(ctx: ToolContext) -> None:
    out = await run(ctx, "python3 -c \"import os, signal; print('bye', flush=True); os.kill(os.getpid(), signal.SIGTERM)\"")
    assert out == "exit_code: -15 (killed by SIGTERM)\n--- stdout ---\nbye\n\n--- stderr ---\n"


async def test_a_program_that_cannot_be_executed_is_a_tool_error(
    ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bin" / "notexec"  # outside the workspace, so only exec itself can refuse it
    bad.parent.mkdir()
    bad.write_bytes(b"no shebang, not a binary\0\1")
    bad.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bad.parent}:/usr/bin:/bin")
    with pytest.raises(ToolError, match="Cannot start 'notexec': Exec format error"):
        await run(with_settings(ctx, command_allowlist=["notexec"]), "notexec")


async def test_timeout_kills_the_whole_process_group(ctx: ToolContext) -> None:
    code = (
        "import subprocess, sys, time; subprocess.Popen(['sleep', '31.4159']); "
        "print('started', flush=True); time.sleep(30)"
    )
    start = time.monotonic()
    with pytest.raises(ToolTimeoutError, match="killed") as info:
        await run(ctx, f'python3 -c "{code}"', timeout_s=3)
    assert time.monotonic() - start < 8
    assert "started" in str(info.value)  # the partial output comes along
    assert await wait_until_gone("31.4159") == []


async def test_sleep_is_killed_within_the_timeout(ctx: ToolContext) -> None:
    start = time.monotonic()
    with pytest.raises(ToolTimeoutError):
        await run(ctx, "sleep 30.271", timeout_s=0.5)
    assert time.monotonic() - start < 3
    assert await wait_until_gone("30.271") == []


async def test_default_timeout_comes_from_settings(ctx: ToolContext) -> None:
    quick = with_settings(ctx, tool_timeout_s=0.5)
    with pytest.raises(ToolTimeoutError, match=r"0\.5s"):
        await run(quick, "sleep 29.5")
    assert await wait_until_gone("29.5") == []


async def test_cancelling_the_call_kills_the_process(ctx: ToolContext) -> None:
    task = asyncio.create_task(run(ctx, "sleep 28.125"))
    assert await poll(lambda: bool(processes_with_argument("28.125")), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until_gone("28.125") == []


async def test_background_children_are_cleaned_up_after_exit(ctx: ToolContext) -> None:
    code = "import subprocess; subprocess.Popen(['sleep', '27.75'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    out = await run(ctx, f'python3 -c "{code}"')
    assert out.startswith("exit_code: 0")
    assert await wait_until_gone("27.75") == []
