"""`colony identity`: who this node and its agents are — public keys, payment addresses, agent cards.

Every command opens the node's identities the way a starting node does: on a node's first use it
creates them (and, with no passphrase configured, generates one and says where it is, once); on a
node whose keys exist but whose passphrase is missing or wrong it stops with exit 3 and says where
the passphrase is looked for. Nothing here prints or stores a secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from colony.cli._common import err, load, out, print_json, reporting
from colony.config import Settings
from colony.identity import DEFAULT_AGENT, Keyring, agent_card, card_event
from colony.identity.cards import DEFAULT_BASE_URL
from colony.identity.store import KeyringSetup, generated_passphrase_message
from colony.market.profiles import card_facts
from colony.payments.prices import sales_of
from colony.store import open_database

__all__ = ["identity_app"]

identity_app = typer.Typer(
    name="identity",
    help=(
        "This node's identity and its agents': Nostr public keys (npub), EVM payment addresses, agent cards.\n\n"
        "Keys are stored encrypted in colony.db (scrypt + AES-128-CTR); the passphrase comes from "
        "COLONY_KEY_PASSPHRASE, the file named by COLONY_KEY_PASSPHRASE_FILE, or a generated file under "
        "~/.config/colony/keys/ (outside the data directory). Exit 3 when it is missing or wrong."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def announce(setup: KeyringSetup) -> None:
    """Say, once, where a passphrase generated just now was saved (stderr: stdout may be JSON)."""
    if setup.generated_passphrase is not None:
        err.print(f"[yellow]{escape(generated_passphrase_message(setup.generated_passphrase))}[/]", highlight=False)


@contextmanager
def _keyring(settings: Settings) -> Iterator[tuple[Keyring, KeyringSetup]]:
    with reporting():
        db = open_database(settings.db_path)
        try:
            keyring = Keyring(db, settings)
            setup = keyring.ensure(announce=False)
            announce(setup)
            yield keyring, setup
        finally:
            db.close()


@identity_app.command()
def show(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List the node's identity and its agents': name, role, npub and EVM payment address.

    Examples:

        colony identity show

        colony identity show --json
    """
    settings = load()
    with _keyring(settings) as (keyring, setup):
        found = keyring.all()
    if as_json:
        print_json({"node": next(i.public() for i in found if i.role == "node"),
                    "agents": [i.public() for i in found if i.role == "agent"],
                    "passphrase_source": setup.passphrase_source})
        return
    table = Table(title="identities")
    for column in ("name", "role", "npub", "EVM address", "skills"):
        table.add_column(column, overflow="fold")
    for ident in found:
        table.add_row(ident.name, ident.role, ident.npub, ident.evm_address, ", ".join(ident.skills))
    out.print(table)
    out.print(f"[dim]keys encrypted in {escape(str(settings.db_path))}; passphrase from "
              f"{escape(setup.passphrase_source)}[/]", highlight=False)


@identity_app.command()
def card(
    name: Annotated[str, typer.Argument(help="The agent (default: colony, the agent the loop runs as).")] = DEFAULT_AGENT,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as plain JSON.")] = False,
    event: Annotated[bool, typer.Option("--event", help="Print the card as a NIP-01 event signed by the agent.")] = False,
) -> None:
    """Print an agent's card: an ERC-8004 registration file with Colony's keys and skills.

    The node serves the same card at /api/v1/identity/agents/NAME/card (the default agent's also at
    /.well-known/agent-registration.json). Endpoints use COLONY_PUBLIC_URL, else http://127.0.0.1:8420.

    Examples:

        colony identity card

        colony identity card scout --json

        colony identity card scout --event > scout-card.json
    """
    settings = load()
    with _keyring(settings) as (keyring, _):
        agent = keyring.agent(name)
        selling, hire = sales_of(keyring.db, settings, agent.name, DEFAULT_AGENT)
        active, facts = card_facts(keyring.db, agent.name)
        document = agent_card(agent, keyring.node(), settings.public_url or DEFAULT_BASE_URL, x402_support=selling,
                              hire_path=hire, active=active, extension=facts)
        signed = card_event(agent, document).model_dump() if event else None
    if signed is not None:
        print_json(signed)
    elif as_json:
        print_json(document)
    else:
        out.print_json(json.dumps(document, ensure_ascii=False))


@identity_app.command()
def add(
    name: Annotated[str, typer.Argument(help="1-32 lowercase letters, digits, '-' or '_'.")],
    skill: Annotated[list[str] | None, typer.Option("--skill", help="Something the agent is good at (repeat).")] = None,
    description: Annotated[str, typer.Option(help="One line about the agent, shown on its card.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the new identity as JSON.")] = False,
) -> None:
    """Add an agent with its own Schnorr key and EVM payment account (a few seconds: scrypt).

    Examples:

        colony identity add scout --skill search --skill summarise

        colony identity add reviewer --description "Reviews patches" --json
    """
    settings = load()
    with _keyring(settings) as (keyring, _):
        made = keyring.create_agent(name, skills=skill or [], description=description)
    if as_json:
        print_json(made.public())
        return
    out.print(f"added agent [bold]{escape(made.name)}[/] · {made.npub} · EVM {made.evm_address}", highlight=False)
