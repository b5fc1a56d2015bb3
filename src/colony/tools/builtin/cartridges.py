"""Agent tools for cartridges: list, test (a dry run), deploy, roll back.

Testing runs the source in the sandbox on a throwaway KV copy and persists nothing, so it is
allowed by default; deploying and rolling back change what the node serves, so they are writes
and ask for approval like any other write (``tool_policy`` can change that). A deploy by the agent
is a self-made change: the benchmark's commit gate refuses the next one until a complete
``colony bench coding`` run has measured it. Sources are read
from the workspace, so what the agent deploys is a file a person can review.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from colony.bench.runs import GateClosedError, pending_change, record_change
from colony.cartridges import CartridgeRequest, Cartridges, lang_for
from colony.errors import CartridgeError, ToolError
from colony.store import open_database
from colony.tools.registry import ToolContext, tool

__all__ = ["CARTRIDGE_TOOLS", "cartridge_deploy", "cartridge_list", "cartridge_rollback", "cartridge_test"]


@contextmanager
def _service(ctx: ToolContext, name: str) -> Iterator[Cartridges]:
    db = open_database(ctx.settings.db_path)
    try:
        yield Cartridges(db, ctx.settings)
    except CartridgeError as exc:
        raise ToolError(name, str(exc)) from exc
    finally:
        db.close()


def _source(ctx: ToolContext, name: str, path: str) -> tuple[str | bytes, Literal["wat", "wasm", "python"]]:
    try:
        lang = lang_for(path)
    except ValueError as exc:
        raise ToolError(name, str(exc)) from exc
    file = ctx.workspace.resolve(path)
    if not file.is_file():
        raise ToolError(name, f"{path} does not exist in the workspace; write it first with write_file.")
    return (file.read_bytes() if lang == "wasm" else file.read_text(encoding="utf-8")), lang


class CartridgeListArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


@tool()
async def cartridge_list(ctx: ToolContext, args: CartridgeListArgs) -> str:
    """List this node's cartridges with their active version, calls and errors."""
    with _service(ctx, "cartridge_list") as svc:
        rows = svc.all()
    if not rows:
        return "No cartridges yet."
    return json.dumps([{k: r[k] for k in ("slug", "kind", "lang", "active_version", "calls", "errors")} for r in rows])


class CartridgeTestArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="Workspace file with the cartridge source (.py, .wat or .wasm).")
    method: str = Field(default="GET", max_length=10, description="HTTP method passed to the cartridge.")
    request_path: str = Field(default="/", max_length=2000, description="Path below /c/{slug}.")
    body: str = Field(default="", max_length=100_000, description="Request body.")
    kv: dict[str, str] = Field(default_factory=dict, description="Initial KV contents for the dry run.")


@tool(effect="execute")
async def cartridge_test(ctx: ToolContext, args: CartridgeTestArgs) -> str:
    """Run a cartridge source once in the sandbox without deploying it; returns status, body and stop reason."""
    source, lang = _source(ctx, "cartridge_test", args.path)
    with _service(ctx, "cartridge_test") as svc:
        outcome = svc.test(source, lang, CartridgeRequest(method=args.method, path=args.request_path, body=args.body),
                           args.kv)
    return json.dumps({"stop": outcome.stop, "detail": outcome.detail, "status": outcome.response.status,
                       "body": outcome.response.body[:4000], "logs": [m for _, m in outcome.logs][:20]})


class CartridgeDeployArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="The cartridge's slug.")
    path: str = Field(description="Workspace file with the source (.py, .wat or .wasm).")
    note: str = Field(default="", max_length=500, description="Why this version.")


@tool(effect="write")
async def cartridge_deploy(ctx: ToolContext, args: CartridgeDeployArgs) -> str:
    """Compile, validate and deploy a cartridge source as the new active version (creates the cartridge if new)."""
    source, lang = _source(ctx, "cartridge_deploy", args.path)
    with _service(ctx, "cartridge_deploy") as svc:
        pending = pending_change(svc.db)  # the commit gate: one unmeasured self-made change at a time
        if pending is not None:
            raise ToolError("cartridge_deploy", str(GateClosedError(pending)))
        version = svc.deploy(args.slug, source, lang=lang, note=args.note or f"deployed by the agent from {args.path}")
        record_change(svc.db, "cartridge", f"{args.slug}@{version}")
    return (f"{args.slug} version {version} is live at /c/{args.slug}. Run the coding benchmark to measure it "
            "before the next self-made change.")


class CartridgeRollbackArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="The cartridge's slug.")
    to_version: int | None = Field(default=None, ge=1, description="Default: the version before the active one.")


@tool(effect="write")
async def cartridge_rollback(ctx: ToolContext, args: CartridgeRollbackArgs) -> str:
    """Make an earlier version of a cartridge active again."""
    with _service(ctx, "cartridge_rollback") as svc:
        version = svc.rollback(args.slug, args.to_version, reason="agent")
    return f"{args.slug} is back on version {version}"


CARTRIDGE_TOOLS = [cartridge_list, cartridge_test, cartridge_deploy, cartridge_rollback]
