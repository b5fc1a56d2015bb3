"""Confinement of tool paths to one workspace root.

Every path a tool touches goes through `Workspace.resolve`: relative paths are taken from the
root, and the fully resolved result (symlinks followed, ``..`` collapsed) must stay inside the
resolved root. That single check refuses ``..`` escapes, absolute paths elsewhere and symlinks
that point out, whichever way they are combined.
"""

from __future__ import annotations

from pathlib import Path

from colony.errors import WorkspaceError

__all__ = ["Workspace"]


class Workspace:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    def resolve(self, path: str, *, tool: str = "workspace") -> Path:
        """Return the absolute path for ``path`` or raise `WorkspaceError` if it leaves the root."""
        if not isinstance(path, str) or not path.strip():
            raise WorkspaceError(tool, "An empty path was given; pass a path relative to the workspace root.")
        if "\x00" in path:
            raise WorkspaceError(tool, "The path contains a NUL byte; pass a plain file path.")
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            resolved = candidate.resolve(strict=False)
        except (OSError, RuntimeError) as exc:  # symlink loops, over-long names
            raise WorkspaceError(tool, f"Cannot resolve path {path!r}: {exc}") from exc
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise WorkspaceError(
                tool,
                f"Path {path!r} resolves to {resolved}, outside the workspace root {self.root}. "
                "Use a path inside the workspace (set COLONY_WORKSPACE to change the root).",
            )
        return resolved

    def relative(self, path: Path) -> str:
        """The path as shown to the model: relative to the root, with forward slashes."""
        try:
            rel = path.resolve().relative_to(self.root)
        except ValueError:
            return str(path)
        return rel.as_posix() or "."
