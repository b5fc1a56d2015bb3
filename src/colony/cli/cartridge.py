"""`colony cartridge`: create, deploy, call, inspect and roll back sandboxed cartridges.

Commands open the node database from settings, so what they change is what the server serves at
``/c/{slug}``. Reads take ``--json``. Errors name the fix: exit 1 for an unknown cartridge or a
source that does not compile, 4 when the database cannot be opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from colony.cartridges import CartridgeRequest, Cartridges, lang_for
from colony.cli._common import ExitCode, fail, load, out, print_json, reporting
from colony.cli.price import check_price, priced
from colony.identity.store import DEFAULT_AGENT
from colony.payments.prices import cartridge_route
from colony.store import open_database

__all__ = ["cartridge_app"]

cartridge_app = typer.Typer(
    name="cartridge",
    help=(
        "Sandboxed programs (WAT/WASM or Python for WASI) with a slug, versions and their own key-value "
        "store. Backend cartridges answer at /c/{slug} on `colony up`.\n\n"
        "Examples ship in cartridges/examples/."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

_TEMPLATES = {
    "python": '''"""{slug}: a backend cartridge. handle() gets the request, this cartridge's KV (a dict of
strings whose changes are kept) and a log function; it returns a string or a dict with status,
headers and body."""


def handle(request, kv, log):
    kv["calls"] = str(int(kv.get("calls", "0")) + 1)
    return {{"status": 200, "body": {{"hello": request["path"], "calls": int(kv["calls"])}}}}
''',
    "wat": ''';; {slug}: a backend cartridge in WAT. Exports memory, alloc and handle (see colony.cartridges._abi).
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "hello")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle") (param i32 i32) (result i64) (i64.const 5)))
''',
}


class LangOpt(StrEnum):
    python = "python"
    wat = "wat"


class KindOpt(StrEnum):
    backend = "backend"
    cognitive = "cognitive"


@contextmanager
def _service() -> Iterator[Cartridges]:
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            yield Cartridges(db, settings)
        finally:
            db.close()


@cartridge_app.command()
def new(
    slug: Annotated[str, typer.Argument(help="The cartridge's slug (lowercase letters, digits, dashes).")],
    lang: Annotated[LangOpt, typer.Option(help="Authoring language.")] = LangOpt.python,
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the source file.")] = Path("."),
) -> None:
    """Write a starter source file for a new cartridge (nothing is deployed yet).

    Examples:

        colony cartridge new greeter

        colony cartridge new tiny --lang wat
    """
    path = directory / f"{slug.replace('-', '_')}.{'py' if lang == LangOpt.python else 'wat'}"
    if path.exists():
        fail(f"{path} already exists", ExitCode.FAILED, "pick another slug or --dir")
    path.write_text(_TEMPLATES[lang.value].format(slug=slug), encoding="utf-8")
    out.print(f"wrote {path}; deploy it with: colony cartridge deploy {slug} {path}", highlight=False)


@cartridge_app.command()
def deploy(
    slug: Annotated[str, typer.Argument(help="The cartridge's slug.")],
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .py, .wat or .wasm file.")],
    kind: Annotated[KindOpt, typer.Option(help="backend (HTTP) or cognitive (a substrate interface).")] = KindOpt.backend,
    interface: Annotated[str | None, typer.Option(help="The interface a cognitive cartridge implements.")] = None,
    note: Annotated[str, typer.Option(help="Why this version (kept with it).")] = "",
    price: Annotated[str | None, typer.Option(help="Charge for calls over x402: credits (0.05) or "
                                              "micro-credits (50000u). Paid calls need no node token.")] = None,
    evm_price: Annotated[int | None, typer.Option("--evm-price", min=1, help="Also accept the EVM rail's token: "
                                                  "atomic units (USDC: 10000 = $0.01).")] = None,
    pay_to: Annotated[str, typer.Option("--pay-to", help="The agent paid for calls.")] = DEFAULT_AGENT,
) -> None:
    """Compile and validate a source file, then make it the cartridge's active version.

    Examples:

        colony cartridge deploy counter cartridges/examples/counter.wat

        colony cartridge deploy weather weather.py --price 0.05

        colony cartridge deploy rerank cartridges/examples/rerank.py --kind cognitive --interface memory.rerank
    """
    try:
        lang = lang_for(source.name)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    data: str | bytes = source.read_bytes() if lang == "wasm" else source.read_text(encoding="utf-8")
    if (price is not None or evm_price is not None) and kind != KindOpt.backend:
        fail("only backend cartridges answer HTTP, so only they can be priced", ExitCode.USAGE)
    with _service() as svc:
        if price is not None or evm_price is not None:  # a bad price or payee deploys nothing
            check_price(svc.db, svc.settings, price, pay_to)
        version = svc.deploy(slug, data, lang=lang, kind=kind.value, interface=interface, note=note)
        if price is not None or evm_price is not None:
            priced(svc.db, svc.settings, cartridge_route(slug), price, evm_price, pay_to)
    out.print(f"{slug} version {version} is live", highlight=False)
    if price is not None or evm_price is not None:
        out.print(f"calls to /c/{slug} cost {price or ''}{' credits' if price else ''}"
                  f"{' or ' if price and evm_price else ''}{f'{evm_price} token units' if evm_price else ''}"
                  f", paid to {pay_to}", highlight=False)


@cartridge_app.command()
def call(
    slug: Annotated[str, typer.Argument(help="The cartridge's slug.")],
    method: Annotated[str, typer.Option(help="HTTP method passed to the cartridge.")] = "GET",
    path: Annotated[str, typer.Option(help="Path below /c/{slug}.")] = "/",
    body: Annotated[str, typer.Option(help="Request body.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole outcome as JSON.")] = False,
) -> None:
    """Call a cartridge once, as /c/{slug} would, and print its response.

    Examples:

        colony cartridge call counter

        colony cartridge call notes --method PUT --path /todo --body "buy milk"
    """
    with _service() as svc:
        outcome = svc.call(slug, CartridgeRequest(method=method.upper(), path=path, body=body))
    if as_json:
        print_json({"version": outcome.version, "stop": outcome.stop, "detail": outcome.detail,
                    "status": outcome.response.status, "headers": outcome.response.headers,
                    "body": outcome.response.body, "fuel_used": outcome.fuel_used, "wall_ms": outcome.wall_ms,
                    "rolled_back_to": outcome.rolled_back_to})
    else:
        print(outcome.response.body)
    if not outcome.ok:
        fail(f"{slug} v{outcome.version} failed: {outcome.stop} {outcome.detail}", ExitCode.FAILED)


@cartridge_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List cartridges with their active version and its call and error counts."""
    with _service() as svc:
        rows = svc.all()
    if as_json:
        print_json(rows)
        return
    table = Table(title="cartridges")
    for col in ("slug", "kind", "lang", "active", "versions", "calls", "errors"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["slug"]), r["kind"] + (f" ({r['interface']})" if r["interface"] else ""), r["lang"],
                      str(r["active_version"]), str(r["versions"]), str(r["calls"] or 0), str(r["errors"] or 0))
    out.print(table)


@cartridge_app.command()
def logs(
    slug: Annotated[str, typer.Argument(help="The cartridge's slug.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many lines.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a cartridge's log: deployments, rollbacks, its own log lines and failed calls."""
    with _service() as svc:
        rows = svc.logs(slug, limit)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        out.print(f"{r['at']} v{r['version']} {r['level']:7} {escape(r['message'])}", highlight=False)


@cartridge_app.command()
def rollback(
    slug: Annotated[str, typer.Argument(help="The cartridge's slug.")],
    to: Annotated[int | None, typer.Option(help="The version to make active (default: the one before).")] = None,
) -> None:
    """Make an earlier version active again.

    Examples:

        colony cartridge rollback counter

        colony cartridge rollback counter --to 1
    """
    with _service() as svc:
        version = svc.rollback(slug, to)
    out.print(f"{slug} is back on version {version}", highlight=False)


@cartridge_app.command()
def rm(slug: Annotated[str, typer.Argument(help="The cartridge's slug.")]) -> None:
    """Delete a cartridge with all its versions, its KV store and its logs."""
    with _service() as svc:
        removed = svc.remove(slug)
    if not removed:
        fail(f"no cartridge {slug!r}", ExitCode.FAILED, "colony cartridge list shows them")
    out.print(f"removed {slug}", highlight=False)
