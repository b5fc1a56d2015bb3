"""Cartridges: sandboxed programs with a slug, a kind, a version history and their own KV store.

Backend cartridges answer HTTP at ``/c/{slug}``; cognitive cartridges implement a named substrate
interface (``interface``) and are called through `Cartridges.call` by the module they replace.
Authoring: WAT or any WASM binary against the host ABI (`colony.cartridges._abi`), or Python for
the WASI interpreter. Examples live in the repository's ``cartridges/examples/``.
May import: `colony.sandbox`, `colony.store`, `colony.config`, `colony.errors`.
"""

from __future__ import annotations

from colony.cartridges._abi import ABI_IMPORTS
from colony.cartridges.service import (
    MAX_DEPTH,
    CallOutcome,
    CartridgeRequest,
    CartridgeResponse,
    Cartridges,
    Kind,
    Lang,
)

__all__ = ["ABI_IMPORTS", "MAX_DEPTH", "CallOutcome", "CartridgeRequest", "CartridgeResponse", "Cartridges", "Kind",
           "Lang", "lang_for"]


def lang_for(filename: str) -> Lang:
    """The authoring language of a cartridge source file, from its extension."""
    if filename.endswith(".wat"):
        return "wat"
    if filename.endswith(".wasm"):
        return "wasm"
    if filename.endswith(".py"):
        return "python"
    raise ValueError(f"{filename}: a cartridge source ends in .wat, .wasm or .py")
