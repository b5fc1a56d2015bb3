"""Cartridges: deploy (compile, validate, swap atomically), call, compose, roll back.

A call reads the active version and this cartridge's KV, runs it in the WASM tier with the
cartridge limits, and — when it succeeds — persists its KV changes in the node database before
answering. A failed call (trap, timeout, 5xx) persists nothing, so a half-run cannot leave half
its writes. Every call is counted against its version; the rollback rule reads those counts.

Composition: a WASM cartridge may `call` another one; each callee gets its own KV namespace and
its own limits, and chains stop at `MAX_DEPTH` (the caller sees -2, a cartridge calling itself
forever is refused at the fourth level). A callee runs only for the time its caller has left, so a
whole chain ends within the first caller's wall-clock limit instead of one limit per level.
"""

from __future__ import annotations

import ast
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import wasmtime
from pydantic import BaseModel, Field

from colony.cartridges import _store
from colony.cartridges._abi import (
    CallState,
    parse_python_output,
    python_cartridge_program,
    run_wasm_cartridge,
    validate_wasm,
)
from colony.config import Settings
from colony.errors import CartridgeError, SandboxError
from colony.sandbox import Limits, SandboxResult, StopReason, check_python_source, run_python, runtime
from colony.store import Database

__all__ = ["MAX_DEPTH", "SLUG", "CallOutcome", "CartridgeRequest", "CartridgeResponse", "Cartridges", "Kind", "Lang"]

MAX_DEPTH = 3
#: The shortest limit a callee is started with when its caller is nearly out of time.
_MIN_TIMEOUT_S = 0.001
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
Kind = Literal["backend", "cognitive"]
Lang = Literal["wat", "wasm", "python"]


class CartridgeRequest(BaseModel):
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""


class CartridgeResponse(BaseModel):
    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""


@dataclass
class CallOutcome:
    slug: str
    version: int
    response: CartridgeResponse
    stop: StopReason
    detail: str = ""
    fuel_used: int | None = None
    wall_ms: float = 0.0
    logs: list[tuple[str, str]] = field(default_factory=list)
    rolled_back_to: int | None = None

    @property
    def ok(self) -> bool:
        return self.stop == "ok" and self.response.status < 500


class Cartridges:
    """The cartridge service of one node (cheap to build; state lives in the database)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.cache_dir: Path = settings.sandbox_cache_dir or settings.home / "cache" / "wasm"
        self.limits = Limits(timeout_s=settings.cartridge_timeout_s, fuel=settings.cartridge_fuel,
                             memory_bytes=settings.cartridge_memory_mb << 20,
                             max_output_bytes=settings.cartridge_max_response_bytes + (64 << 10))

    # -- deploying ----------------------------------------------------------------------------
    def compile(self, source: str | bytes, lang: Lang) -> wasmtime.Module | None:
        """Compile and validate; None for Python (checked for syntax and a ``handle`` function)."""
        if lang == "python":
            text = source.decode() if isinstance(source, bytes) else source
            try:
                check_python_source(text)
            except SandboxError as exc:
                raise CartridgeError(str(exc), status=422) from exc
            tree = ast.parse(text)
            if not any(isinstance(n, ast.FunctionDef) and n.name == "handle" for n in tree.body):
                raise CartridgeError("A Python cartridge must define handle(request, kv, log).", status=422)
            return None
        try:
            module = runtime().module(source, cache_dir=self.cache_dir)
        except SandboxError as exc:
            raise CartridgeError(str(exc), status=422) from exc
        validate_wasm(module)
        return module

    def deploy(
        self, slug: str, source: str | bytes, *, lang: Lang, kind: Kind = "backend", interface: str | None = None,
        description: str = "", note: str = "",
    ) -> int:
        """Compile and validate ``source``, then make it the active version; return its number."""
        if not SLUG.match(slug):
            raise CartridgeError(f"{slug!r} is not a valid slug: use 1-63 lowercase letters, digits and dashes.",
                                 status=422, slug=slug)
        if kind == "cognitive" and not interface:
            raise CartridgeError("A cognitive cartridge names the interface it implements (e.g. memory.rerank).",
                                 status=422, slug=slug)
        self.compile(source, lang)
        data = source.encode() if isinstance(source, str) else source
        version = _store.insert_version(self.db, slug=slug, kind=kind, lang=lang, interface=interface,
                                        description=description, source=data, note=note)
        _store.log(self.db, slug, version, "info", f"deployed version {version}")
        return version

    # -- calling ------------------------------------------------------------------------------
    def call(self, slug: str, request: CartridgeRequest, *, depth: int = 1,
             deadline: float | None = None) -> CallOutcome:
        """Run the active version of ``slug`` on ``request``; persist KV and counts.

        ``deadline`` (a `time.monotonic` instant) is the caller's, for a nested call: the callee's
        wall-clock limit is cut to the time left before it.
        """
        row = _store.get_active(self.db, slug)
        if row is None:
            raise CartridgeError(f"No cartridge {slug!r}. List them with: colony cartridge list", status=404, slug=slug)
        version = int(row["active_version"])
        outcome, state = self._run(slug, version, row["lang"], bytes(row["source"]), request,
                                   _store.kv_snapshot(self.db, slug), depth, self._limits_until(deadline))
        if outcome.ok and state is not None:
            _store.kv_write(self.db, slug, state.sets, state.deletes)
        if not outcome.ok:
            outcome.logs.append(("error", f"{outcome.stop}: {outcome.detail or outcome.response.status}"))
        counted = _store.record_outcome(self.db, slug, version, error=not outcome.ok, messages=outcome.logs)
        outcome.rolled_back_to = self._rollback_rule(slug, counted)
        return outcome

    def test(self, source: str | bytes, lang: Lang, request: CartridgeRequest,
             kv: dict[str, str] | None = None) -> CallOutcome:
        """Run source that is not deployed, on a copy of ``kv``; nothing is persisted."""
        self.compile(source, lang)
        data = source.encode() if isinstance(source, str) else source
        outcome, _ = self._run("(test)", 0, lang, data, request,
                               {k: v.encode() for k, v in (kv or {}).items()}, 1, self.limits)
        return outcome

    def _limits_until(self, deadline: float | None) -> Limits:
        """The cartridge limits, with the wall clock cut to end by ``deadline`` when one is set."""
        if deadline is None:
            return self.limits
        left = deadline - time.monotonic()
        if left >= self.limits.timeout_s:
            return self.limits
        return self.limits.model_copy(update={"timeout_s": max(left, _MIN_TIMEOUT_S)})

    def _run(self, slug: str, version: int, lang: str, source: bytes, request: CartridgeRequest,
             kv: dict[str, bytes], depth: int, limits: Limits) -> tuple[CallOutcome, CallState | None]:
        max_body = self.settings.cartridge_max_response_bytes
        if lang == "python":
            return self._run_python(slug, version, source.decode(), request, kv, max_body, limits), None
        try:  # validated when deployed; here only fetched (from memory once warm)
            module = runtime().module(source, cache_dir=self.cache_dir)
        except SandboxError as exc:
            raise CartridgeError(str(exc), status=500, slug=slug) from exc
        # Set before the store is made, so a callee's deadline is never later than this run's own.
        deadline = time.monotonic() + limits.timeout_s
        state = CallState(slug=slug, kv=dict(kv), kv_quota=self.settings.cartridge_max_kv_bytes,
                          call_other=lambda other, body: self._nested(other, body, depth, deadline))
        result, body = run_wasm_cartridge(module, request.model_dump_json().encode(), state, limits, max_body)
        response = CartridgeResponse(status=state.status if result.ok else _status_for(result),
                                     headers=state.headers if result.ok else {},
                                     body=body.decode("utf-8", "replace") if result.ok else result.detail)
        return _outcome(slug, version, response, result, state.logs), state

    def _nested(self, slug: str, body: bytes, depth: int, deadline: float) -> tuple[int, bytes]:
        if depth >= MAX_DEPTH:
            return -2, b""
        if time.monotonic() >= deadline:  # the caller is out of time and stops at its next epoch check
            return -3, b""
        try:
            outcome = self.call(slug, CartridgeRequest(method="POST", path="/", body=body.decode("utf-8", "replace")),
                                depth=depth + 1, deadline=deadline)
        except CartridgeError:
            return -3, b""
        return (0, outcome.response.body.encode()) if outcome.ok else (-3, b"")

    def _run_python(self, slug: str, version: int, source: str, request: CartridgeRequest,
                    kv: dict[str, bytes], max_body: int, limits: Limits) -> CallOutcome:
        payload = json.dumps({"request": request.model_dump(),
                              "kv": {k: v.decode("utf-8", "replace") for k, v in kv.items()}}).encode()
        result = run_python(python_cartridge_program(source), stdin=payload, limits=limits,
                            tier=self.settings.sandbox_python_tier, cache_dir=self.cache_dir,
                            colony_home=self.settings.home)
        if result.stdout_truncated:
            result.stop, result.detail = "denied", f"response body over the {max_body}-byte limit"
        if not result.ok:
            tail = result.stderr.strip().splitlines()[-1:] or [result.detail]
            return _outcome(slug, version, CartridgeResponse(status=_status_for(result), body=tail[0]), result, [])
        try:
            data = parse_python_output(result.stdout)
            response = CartridgeResponse.model_validate(data["response"])
        except (CartridgeError, ValueError) as exc:
            result.stop, result.detail = "crashed", str(exc)
            return _outcome(slug, version, CartridgeResponse(status=502, body=str(exc)), result, [])
        if len(response.body.encode()) > max_body:
            result.stop, result.detail = "denied", f"response body over the {max_body}-byte limit"
            return _outcome(slug, version, CartridgeResponse(status=502, body=result.detail), result, [])
        outcome = _outcome(slug, version, response, result, [("info", m) for m in data.get("logs", [])])
        if slug != "(test)":
            sets = {k: str(v).encode() for k, v in data.get("set", {}).items()}
            if sum(len(k) + len(v) for k, v in {**kv, **sets}.items()) > self.settings.cartridge_max_kv_bytes:
                outcome.stop, outcome.detail = "denied", "the cartridge's KV would exceed its quota"
                outcome.response = CartridgeResponse(status=507, body=outcome.detail)
            elif response.status < 500:
                _store.kv_write(self.db, slug, sets, set(data.get("delete", [])))
        return outcome

    # -- versions -------------------------------------------------------------------------------
    def rollback(self, slug: str, to_version: int | None = None, *, reason: str = "manual") -> int:
        """Make another version active: the newest earlier one not itself rolled back, unless named."""
        row = _store.get_cartridge(self.db, slug)
        if row is None:
            raise CartridgeError(f"No cartridge {slug!r}.", status=404, slug=slug)
        active = row["active_version"]
        rows = _store.list_versions(self.db, slug)
        versions = [v["version"] for v in rows]
        if to_version is None:  # the newest earlier version that was not itself rolled back
            earlier = [v["version"] for v in rows if v["version"] < active and v["status"] != "rolled_back"]
            earlier = earlier or [v for v in versions if v < active]
            if not earlier:
                raise CartridgeError(f"{slug} has no version before {active} to roll back to.", status=409, slug=slug)
            to_version = earlier[-1]
        if to_version not in versions:
            raise CartridgeError(f"{slug} has no version {to_version}; it has {versions}.", status=404, slug=slug)
        _store.activate(self.db, slug, to_version)
        _store.log(self.db, slug, to_version, "warning", f"rolled back from {active} to {to_version} ({reason})")
        return to_version

    def report_error(self, slug: str, version: int, reason: str) -> int | None:
        """Count a bad answer from a call that itself succeeded; may trigger the rollback rule."""
        row = _store.add_error(self.db, slug, version, reason)
        return None if row is None else self._rollback_rule(slug, row)

    def record_fitness(self, slug: str, version: int, fitness: float) -> int | None:
        """Store a version's fitness (e.g. a benchmark score); roll back if it dropped too far."""
        _store.set_fitness(self.db, slug, version, fitness)
        row = _store.get_version(self.db, slug, version)
        assert row is not None
        return self._rollback_rule(slug, row)

    def _rollback_rule(self, slug: str, ver: dict[str, Any]) -> int | None:
        if ver["status"] != "active":
            return None
        s = self.settings
        failing = ver["calls"] >= s.cartridge_rollback_min_calls and (
            ver["errors"] / ver["calls"] >= s.cartridge_rollback_error_rate)
        if not failing and ver["fitness"] is None:
            return None  # the common case: no version query on the hot path
        previous = [v for v in _store.list_versions(self.db, slug) if v["version"] < ver["version"]]
        if not previous:
            return None
        prev = previous[-1]
        worse = (ver["fitness"] is not None and prev["fitness"] is not None
                 and ver["fitness"] < prev["fitness"] - s.cartridge_rollback_fitness_drop)
        if not (failing or worse):
            return None
        why = (f"error rate {ver['errors']}/{ver['calls']}" if failing
               else f"fitness {ver['fitness']:.3f} < {prev['fitness']:.3f}")
        return self.rollback(slug, prev["version"], reason=f"automatic: {why}")

    def remove(self, slug: str) -> bool:
        return _store.delete_cartridge(self.db, slug)

    def all(self) -> list[dict[str, Any]]:
        return _store.list_cartridges(self.db)

    def versions(self, slug: str) -> list[dict[str, Any]]:
        return _store.list_versions(self.db, slug)

    def logs(self, slug: str, limit: int = 50) -> list[dict[str, Any]]:
        return _store.logs(self.db, slug, limit)

    def kv(self, slug: str) -> dict[str, str]:
        return {k: v.decode("utf-8", "replace") for k, v in _store.kv_snapshot(self.db, slug).items()}


def _status_for(result: SandboxResult) -> int:
    return {"timeout": 504, "out_of_fuel": 504, "denied": 502}.get(result.stop, 500)


def _outcome(slug: str, version: int, response: CartridgeResponse, result: SandboxResult,
             logs: list[tuple[str, str]]) -> CallOutcome:
    return CallOutcome(slug=slug, version=version, response=response, stop=result.stop, detail=result.detail,
                       fuel_used=result.fuel_used, wall_ms=result.wall_ms, logs=logs)
