"""Where the passphrase that encrypts the node's keys comes from — never from the data directory.

Order: ``COLONY_KEY_PASSPHRASE``, then the file named by ``COLONY_KEY_PASSPHRASE_FILE``, then the
node's generated passphrase file ``$XDG_CONFIG_HOME/colony/keys/<id>.passphrase`` (``~/.config``
when XDG_CONFIG_HOME is unset), where ``<id>`` is the first 16 hex digits of the sha256 of the
resolved COLONY_HOME path, so several nodes on one machine each have their own.

Why outside COLONY_HOME: the keys sit encrypted in ``colony.db``, and the data directory gets
copied (backups, restores, a laptop's sync folder). Keeping the passphrase elsewhere means such a
copy yields no key. The generated file is made only when a node has no identities yet (its first
start); a node whose keys exist but whose passphrase cannot be found stops with
`KeysLockedError` instead of making a new one — a new passphrase would lock the old keys away.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from colony.config import Settings
from colony.errors import KeysLockedError

__all__ = ["ENV_FILE", "ENV_VALUE", "Passphrase", "default_passphrase_file", "find_passphrase",
           "generate_passphrase", "passphrase_sources"]

log = logging.getLogger("colony.identity")

ENV_VALUE = "COLONY_KEY_PASSPHRASE"
ENV_FILE = "COLONY_KEY_PASSPHRASE_FILE"


@dataclass(frozen=True)
class Passphrase:
    """A passphrase and where it came from; ``repr`` and ``str`` never show the value."""

    secret: bytes = field(repr=False)
    #: ``COLONY_KEY_PASSPHRASE`` or the path of the file it was read from.
    source: str
    #: True when this process generated it just now (the node's first start).
    generated: bool = False


def _config_dir() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    return Path(xdg).expanduser() if xdg else Path.home() / ".config"


def default_passphrase_file(home: Path) -> Path:
    """The generated passphrase file of the node whose data directory is ``home``."""
    digest = hashlib.sha256(str(home.expanduser().resolve()).encode()).hexdigest()[:16]
    return _config_dir() / "colony" / "keys" / f"{digest}.passphrase"


def passphrase_sources(settings: Settings) -> list[str]:
    """Where the passphrase is looked for, in order (names and paths, for messages; never a value)."""
    named = settings.key_passphrase_file
    return [ENV_VALUE, f"{ENV_FILE}={named}" if named else ENV_FILE, str(default_passphrase_file(settings.home))]


def _read(path: Path, what: str, settings: Settings) -> bytes:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KeysLockedError(
            f"{what} names {path}, which does not exist. Point it at the file holding this node's key passphrase, "
            f"or unset it to use {default_passphrase_file(settings.home)}.", looked_in=passphrase_sources(settings),
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysLockedError(f"Cannot read the key passphrase file {path}: {exc}. Check its owner and mode "
                              "(it should be readable by this user only).", looked_in=passphrase_sources(settings)) from exc
    value = text.rstrip("\r\n")
    if not value:
        raise KeysLockedError(f"The key passphrase file {path} is empty. Put this node's passphrase in it "
                              f"(or set {ENV_VALUE}).", looked_in=passphrase_sources(settings))
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("the key passphrase file %s is readable by other users: run chmod 600 %s", path, path)
    return value.encode("utf-8")


def find_passphrase(settings: Settings) -> Passphrase | None:
    """The configured passphrase, or the node's generated one; None when there is none yet.

    An explicit setting that does not work (an empty value, a file that is missing) is an error
    even on a first start: the person meant that passphrase, and a generated one would surprise them.
    """
    if settings.key_passphrase is not None:
        value = settings.key_passphrase.get_secret_value()
        if not value:
            raise KeysLockedError(f"{ENV_VALUE} is set but empty. Set it to this node's key passphrase, or unset it.",
                                  looked_in=passphrase_sources(settings))
        return Passphrase(value.encode("utf-8"), ENV_VALUE)
    if settings.key_passphrase_file is not None:
        path = settings.key_passphrase_file.expanduser()
        return Passphrase(_read(path, ENV_FILE, settings), str(path))
    path = default_passphrase_file(settings.home)
    if path.exists():
        return Passphrase(_read(path, "The node's passphrase file", settings), str(path))
    return None


def _private_dirs(path: Path) -> None:
    """``…/colony`` and ``…/colony/keys`` owner-only (0700), created if missing."""
    keys = path.parent
    keys.parent.parent.mkdir(parents=True, exist_ok=True)  # $XDG_CONFIG_HOME itself: the user's, left as it is
    for folder in (keys.parent, keys):
        folder.mkdir(mode=0o700, exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) != 0o700:
            os.chmod(folder, 0o700)


def generate_passphrase(settings: Settings) -> Passphrase:
    """Create the node's passphrase file (0600 in 0700 folders) with a new random passphrase.

    Written to a temporary file and linked into place, so a reader never sees half a passphrase
    and two processes starting at once agree: the second finds the first one's file and uses it.
    """
    path = default_passphrase_file(settings.home)
    try:
        _private_dirs(path)
        value = secrets.token_urlsafe(32)  # 256 bits
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(value + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process made it first: theirs is the node's
                return Passphrase(_read(path, "The node's passphrase file", settings), str(path))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    except OSError as exc:
        raise KeysLockedError(
            f"Cannot create the key passphrase file {path}: {exc.strerror or exc}. Make its folder writable by this "
            f"user, or set {ENV_VALUE} (or {ENV_FILE}) to a passphrase of your own.",
            looked_in=passphrase_sources(settings),
        ) from exc
    return Passphrase(value.encode("utf-8"), str(path), generated=True)
