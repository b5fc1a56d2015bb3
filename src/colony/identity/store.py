"""The node's identities: who the node and each agent it hosts are, and their keys, unlocked on demand.

Every node has one ``node`` identity and at least one agent, ``colony`` — the agent the loop runs
as. Each has a Schnorr key (its id is the x-only public key; ``npub`` for people) and an EVM
payment account with a secret of its own. Both secrets are stored only as encrypted keyfiles
(`colony.identity.keystore`) under a passphrase from outside the data directory
(`colony.identity.passphrase`).

The first use on a node without identities creates the node's and the default agent's (and, with
nothing configured, a generated passphrase — announced once). On a node that has them, the first
use checks the passphrase by decrypting the node's key and stops with `KeysLockedError` when it
cannot: there is no fallback to a plaintext key or to new identities.

Public API for other capabilities (ledger, payments, market)::

    node_identity(node) -> Identity              # or (db, settings), or a Keyring
    agent_identity(node, name="colony") -> Identity
    list_identities(node) -> list[Identity]
    create_agent(node, "scout", skills=["search"]) -> Identity
    keyring.create_agent(name, …, then=write_more)      # ``then`` runs in the identity's transaction
    keyring.update_agent(name, skills=[…], description="…") -> Identity
    ident.schnorr_key / ident.evm_account / ident.sign(kind, content, tags)
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from colony.config import Settings
from colony.errors import IdentityError, KeysLockedError
from colony.identity import _store, evm, keystore
from colony.identity.events import Event, sign_event
from colony.identity.keys import SchnorrKey, npub
from colony.identity.passphrase import (
    ENV_FILE,
    ENV_VALUE,
    Passphrase,
    default_passphrase_file,
    find_passphrase,
    generate_passphrase,
    passphrase_sources,
)
from colony.store import Database, Row, open_database

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = ["DEFAULT_AGENT", "NAME_PATTERN", "NODE_NAME", "Identity", "Keyring", "KeyringSetup", "Role",
           "agent_identity", "create_agent", "find_identity", "generated_passphrase_message", "list_identities",
           "node_identity", "prepare_identities"]

log = logging.getLogger("colony.identity")

Role = Literal["node", "agent"]
NODE_NAME = "node"
DEFAULT_AGENT = "colony"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_NAME = re.compile(NAME_PATTERN)
MAX_SKILLS, MAX_SKILL_CHARS, MAX_DESCRIPTION_CHARS = 32, 64, 1000


@dataclass(frozen=True)
class Identity:
    """One identity's public facts, and (through its keyring) its keys, unlocked on first use."""

    name: str
    role: Role
    public_hex: str
    evm_address: str
    evm_proof: str
    description: str
    skills: tuple[str, ...]
    created_at: str
    keyring: Keyring = field(repr=False, compare=False)

    @property
    def npub(self) -> str:
        return npub(self.public_hex)

    @property
    def schnorr_key(self) -> SchnorrKey:
        """The BIP-340 key (decrypted once per process; the first call may take a second)."""
        return self.keyring.schnorr_key(self.name)

    @property
    def evm_account(self) -> LocalAccount:
        """The `eth_account` account that pays and is paid (its own secret, not the Schnorr key's)."""
        return self.keyring.evm_account(self.name)

    def sign(self, kind: int, content: str, tags: list[list[str]] | None = None,
             created_at: int | None = None) -> Event:
        """A NIP-01 event by this identity."""
        return sign_event(self.schnorr_key, kind, content, tags, created_at)

    def public(self) -> dict[str, Any]:
        """What anyone may see (API, CLI ``--json``): no keyfile, no secret."""
        return {"name": self.name, "role": self.role, "public_hex": self.public_hex, "npub": self.npub,
                "evm_address": self.evm_address, "description": self.description, "skills": list(self.skills),
                "created_at": self.created_at}


@dataclass(frozen=True)
class KeyringSetup:
    """What `Keyring.ensure` found or did."""

    #: Identities created just now (the node's first start: ``["node", "colony"]``).
    created: list[str]
    #: Where the passphrase came from (a variable name or a file path; never the value).
    passphrase_source: str
    #: The passphrase file generated just now, or None (it is announced once, on that start).
    generated_passphrase: Path | None


def generated_passphrase_message(path: Path) -> str:
    return (f"Generated a passphrase for this node's keys and saved it to {path} (owner-only, outside the data "
            "directory). Back it up with the data: without it the keys in colony.db cannot be decrypted. "
            f"To use your own instead, set {ENV_VALUE} or {ENV_FILE} before a node's first start.")


class Keyring:
    """The identities of the node whose database is ``db``, with the passphrase that unlocks them."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self._setup: KeyringSetup | None = None
        self._passphrase: Passphrase | None = None
        self._lock = threading.Lock()

    # -- setup -------------------------------------------------------------------------------
    def ensure(self, *, announce: bool = True) -> KeyringSetup:
        """Create the node's and the default agent's identities if missing; check the passphrase.

        ``announce`` logs the one-time message about a generated passphrase; surfaces that show
        it themselves (``colony up``) pass False and print `KeyringSetup.generated_passphrase`.
        """
        with self._lock:
            if self._setup is None:
                self._setup = self._ensure()
                if announce and self._setup.generated_passphrase is not None:
                    log.warning(generated_passphrase_message(self._setup.generated_passphrase))
            return self._setup

    def _ensure(self) -> KeyringSetup:
        existing = {row["name"]: row for row in _store.list_identity_rows(self.db)}
        passphrase = find_passphrase(self.settings)
        if existing:
            if passphrase is None:
                raise KeysLockedError(
                    f"This node's keys are encrypted in {self.settings.db_path}, but no passphrase was found: "
                    f"{ENV_VALUE} and {ENV_FILE} are unset and {default_passphrase_file(self.settings.home)} "
                    f"does not exist. Set {ENV_VALUE}, or {ENV_FILE} to the file holding the passphrase this node "
                    "was created with (if the data directory was moved or restored, that is the .passphrase file "
                    "of its old location under ~/.config/colony/keys/).",
                    looked_in=passphrase_sources(self.settings),
                )
            first = existing.get(NODE_NAME) or next(iter(existing.values()))
            self._unseal(passphrase, first["name"], "schnorr_keyfile")
        elif passphrase is None:
            passphrase = generate_passphrase(self.settings)
        self._passphrase = passphrase
        wanted: list[tuple[str, Role, str]] = [
            (NODE_NAME, "node", "The node that hosts these agents."),
            (DEFAULT_AGENT, "agent", "Colony's default agent."),
        ]
        rows = [self._new_row(name, role, description, ()) for name, role, description in wanted if name not in existing]
        inserted = _store.insert_identities(self.db, rows) if rows else []
        created = [row["name"] for row, ok in zip(rows, inserted, strict=True) if ok]
        if len(created) < len(rows):  # another process created them first: its keys must open too
            self._unseal(passphrase, NODE_NAME, "schnorr_keyfile")
        return KeyringSetup(created, passphrase.source,
                            Path(passphrase.source) if passphrase.generated else None)

    def _new_row(self, name: str, role: Role, description: str, skills: tuple[str, ...]) -> dict[str, Any]:
        """Fresh keys, sealed (two scrypt runs): done outside any transaction."""
        assert self._passphrase is not None
        weak = self.settings.insecure_test_kdf
        schnorr = SchnorrKey.generate()
        evm_secret, address = evm.new_evm_secret()  # independent randomness: never derived from ``schnorr``
        return {
            "name": name, "role": role, "public_hex": schnorr.public_hex, "evm_address": address,
            "schnorr_keyfile": keystore.seal(schnorr.secret, self._passphrase, weak_kdf=weak, keep_address=False),
            "evm_keyfile": keystore.seal(evm_secret, self._passphrase, weak_kdf=weak),
            "evm_proof": evm.prove_binding(evm_secret, schnorr.public_hex),
            "description": description, "skills": list(skills),
        }

    def _unseal(self, passphrase: Passphrase, name: str, column: str) -> bytes:
        row = _store.get_identity(self.db, name, with_keyfiles=True)
        if row is None:
            raise IdentityError(f"No identity named {name!r} on this node.", reason="unknown", name=name)
        what = f"the {'EVM account' if column == 'evm_keyfile' else 'key'} of {row['role']} {name!r}"
        return keystore.unseal(row[column], passphrase, what=what)

    def _ready(self) -> Passphrase:
        self.ensure()
        assert self._passphrase is not None
        return self._passphrase

    # -- reading -----------------------------------------------------------------------------
    def _identity(self, row: Row) -> Identity:
        return Identity(name=row["name"], role=row["role"], public_hex=row["public_hex"],
                        evm_address=row["evm_address"], evm_proof=row["evm_proof"], description=row["description"],
                        skills=tuple(row["skills"]), created_at=row["created_at"], keyring=self)

    def node(self) -> Identity:
        self.ensure()
        row = _store.get_node(self.db)
        assert row is not None, "ensure() creates the node identity"
        return self._identity(row)

    def get(self, name: str) -> Identity:
        self.ensure()
        row = _store.get_identity(self.db, name)
        if row is None:
            raise IdentityError(f"No identity named {name!r} on this node. List them with: colony identity show",
                                reason="unknown", name=name)
        return self._identity(row)

    def agent(self, name: str = DEFAULT_AGENT) -> Identity:
        found = self.get(name)
        if found.role != "agent":
            raise IdentityError(f"{name!r} is the node's identity, not an agent's.", reason="unknown", name=name)
        return found

    def all(self) -> list[Identity]:
        self.ensure()
        return [self._identity(row) for row in _store.list_identity_rows(self.db)]

    def by_public_key(self, public_hex: str) -> Identity | None:
        return next((i for i in self.all() if i.public_hex == public_hex.lower()), None)

    # -- keys --------------------------------------------------------------------------------
    def schnorr_key(self, name: str) -> SchnorrKey:
        row = _store.get_identity(self.db, name)
        key = SchnorrKey(self._unseal(self._ready(), name, "schnorr_keyfile"))
        if row is None or key.public_hex != row["public_hex"]:
            raise IdentityError(f"The stored key of {name!r} does not match its public key: colony.db was altered. "
                                "Restore it from a backup (colony restore PATH).", name=name)
        return key

    def evm_account(self, name: str) -> LocalAccount:
        row = _store.get_identity(self.db, name)
        account = evm.account_from_secret(self._unseal(self._ready(), name, "evm_keyfile"))
        if row is None or account.address != row["evm_address"]:
            raise IdentityError(f"The stored EVM account of {name!r} does not match its address: colony.db was "
                                "altered. Restore it from a backup (colony restore PATH).", name=name)
        return account

    # -- more agents -------------------------------------------------------------------------
    def create_agent(self, name: str, *, skills: list[str] | tuple[str, ...] = (), description: str = "",
                     then: Callable[[], None] | None = None) -> Identity:
        """A new agent with its own keys; `IdentityError` for a bad or taken name or bad skills.

        ``then`` runs inside the transaction that inserts the identity (a ``db.tx()`` it opens
        joins it), after the insert: what another capability keeps about the agent (the market's
        profile) is written with it or not at all. The keys are made before that transaction —
        scrypt must not hold the database's write lock.
        """
        if not _NAME.fullmatch(name):
            raise IdentityError(f"{name!r} is not a valid agent name: use 1-32 lowercase letters, digits, '-' or '_', "
                                "starting with a letter or digit.", reason="invalid", name=name)
        cleaned = _checked_skills(name, skills)
        _check_description(name, description)
        self.ensure()
        if _store.get_identity(self.db, name) is None:
            row = self._new_row(name, "agent", description.strip(), cleaned)
            with self.db.tx():
                [ok] = _store.insert_identities(self.db, [row])
                if ok and then is not None:
                    then()
            if ok:
                return self.get(name)
        raise IdentityError(f"An identity named {name!r} already exists on this node; choose another name.",
                            reason="exists", name=name)

    def update_agent(self, name: str, *, skills: list[str] | tuple[str, ...] | None = None,
                     description: str | None = None) -> Identity:
        """Change an agent's skills and/or description (its keys never change); `IdentityError` when
        there is no such agent or a value is out of bounds. None leaves a field as it is."""
        current = self.agent(name)
        cleaned = current.skills if skills is None else _checked_skills(name, skills)
        if description is not None:
            _check_description(name, description)
        _store.update_identity(self.db, name, skills=list(cleaned),
                               description=current.description if description is None else description.strip())
        return self.get(name)


def _checked_skills(name: str, skills: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Skills stripped, blanks and repeats dropped; `IdentityError` past the limits."""
    cleaned = tuple(dict.fromkeys(s.strip() for s in skills if s.strip()))
    if len(cleaned) > MAX_SKILLS or any(len(s) > MAX_SKILL_CHARS for s in cleaned):
        raise IdentityError(f"At most {MAX_SKILLS} skills of at most {MAX_SKILL_CHARS} characters each.",
                            reason="invalid", name=name)
    return cleaned


def _check_description(name: str, description: str) -> None:
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise IdentityError(f"The description is over {MAX_DESCRIPTION_CHARS} characters.", reason="invalid",
                            name=name)


class HasKeyring(Protocol):
    """Anything holding a node's keyring (a `colony.node.Node`)."""

    @property
    def keyring(self) -> Keyring: ...


Source = Keyring | HasKeyring | Database


def _keyring(source: Source, settings: Settings | None) -> Keyring:
    if isinstance(source, Keyring):
        return source
    if isinstance(source, Database):
        if settings is None:
            raise TypeError("pass the node's settings along with its database")
        return Keyring(source, settings)
    return source.keyring


def node_identity(source: Source, settings: Settings | None = None) -> Identity:
    """The node's own identity (created on the node's first use)."""
    return _keyring(source, settings).node()


def agent_identity(source: Source, settings: Settings | None = None, *, name: str = DEFAULT_AGENT) -> Identity:
    """An agent's identity by name; `IdentityError` (reason ``unknown``) when there is none."""
    return _keyring(source, settings).agent(name)


def list_identities(source: Source, settings: Settings | None = None) -> list[Identity]:
    """The node first, then its agents in the order they were created."""
    return _keyring(source, settings).all()


def find_identity(source: Source, public_hex: str, settings: Settings | None = None) -> Identity | None:
    """The local identity with this public key, or None (e.g. to tell a local payer from a peer)."""
    return _keyring(source, settings).by_public_key(public_hex)


def create_agent(source: Source, name: str, *, settings: Settings | None = None,
                 skills: list[str] | tuple[str, ...] = (), description: str = "") -> Identity:
    """Add an agent with its own Schnorr key and EVM account (two scrypt runs: about three seconds)."""
    return _keyring(source, settings).create_agent(name, skills=skills, description=description)


def prepare_identities(settings: Settings) -> KeyringSetup:
    """For a surface starting a node (``colony up``): create or unlock the identities now.

    Uses a connection of its own; the unlocked keys stay in this process's memory, so the node's
    own keyring finds them without running scrypt again. Raises `KeysLockedError` (exit 3) when the
    node has keys but no working passphrase. The caller shows a generated passphrase's message.
    """
    db = open_database(settings.db_path)
    try:
        return Keyring(db, settings).ensure(announce=False)
    finally:
        db.close()
