"""Backups over HTTP: make one into ``$COLONY_HOME/backups/``, list the ones made.

Why only a file *name*: the node runs with its owner's rights, so a client-chosen path would let
anyone holding the token write a copy of every conversation anywhere on the host (a web root, a
shared folder) or replace a file there. The API therefore takes at most a plain file name, and
the backup always lands in the node's own owner-only backups folder; ``colony backup PATH`` on
the host is the way to write elsewhere. The copy is the same as the CLI's
(`colony.store.backup.create_backup`): a consistent snapshot while the node keeps writing.

Routes are plain ``def``: a backup is blocking SQLite and disk work, so it runs in the thread
pool and never stalls the event loop that streams other turns.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from colony.errors import BackupError, DatabaseBusyError
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, errors
from colony.store.backup import (
    BackupInfo,
    backup_dir,
    create_backup,
    default_backup_path,
    excluded_by,
    list_backups,
)

__all__ = ["BackupList", "BackupMade", "BackupRequest", "router"]

router = APIRouter(prefix="/api/v1/backup", tags=["backup"], dependencies=[Depends(require_auth)])

#: A plain file name ending in .db: no folder, no leading dot, nothing a path could hide behind.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,96}\.db$"


class BackupRequest(BaseModel):
    """What a client may choose about a backup: its file name in the backups folder, nothing more."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, pattern=NAME_PATTERN,
        description="File name inside $COLONY_HOME/backups/, e.g. nightly.db (default colony-<time>.db). "
                    "Paths are refused: run `colony backup PATH` on the host to write elsewhere.",
    )
    overwrite: StrictBool = Field(default=False, description="Replace a backup of the same name.")


class BackupMade(BaseModel):
    backup: BackupInfo


class BackupList(BaseModel):
    last: BackupInfo | None = Field(description="The newest backup, or null if none was made.")
    backups: list[BackupInfo] = Field(description="Recorded backups, newest first.")
    directory: str = Field(description="Where API backups go: $COLONY_HOME/backups.")


@router.post("", status_code=201, summary="Back up the node database into $COLONY_HOME/backups/",
             responses=errors(409, 503))
def make_backup(request: Request, body: Annotated[BackupRequest | None, Body()] = None) -> BackupMade:
    n = node(request)
    home = n.settings.home
    wanted = body or BackupRequest()
    target = backup_dir(home) / wanted.name if wanted.name else default_backup_path(home)
    try:
        info = create_backup(n.settings.db_path, target, overwrite=wanted.overwrite,
                             excludes=excluded_by(n.settings.database_url))
    except DatabaseBusyError as exc:
        raise APIError(503, exc.code, str(exc)) from exc
    except BackupError as exc:
        if exc.reason == "exists":
            raise APIError(409, "backup_exists", f"A backup named {target.name} already exists; choose another "
                           "name or send \"overwrite\": true.") from exc
        raise APIError(500, "backup_failed", str(exc)) from exc
    return BackupMade(backup=info)


@router.get("", summary="The last backup and the recent ones, newest first")
def show_backups(
    request: Request, limit: Annotated[int, Query(ge=1, le=200, description="How many to list.")] = 20,
) -> BackupList:
    home = node(request).settings.home
    found = list_backups(home, limit=limit)
    return BackupList(last=found[0] if found else None, backups=found, directory=str(backup_dir(home)))
