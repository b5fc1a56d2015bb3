"""`colony peers` and `colony spawn`: the nodes of this node's colony.

The commands read and write the node's database directly (SQLite lets them run beside a serving
``colony up``, whose federation loop picks the changes up at its next heartbeat), so they work
whether or not the node is running. ``add`` reaches the other node over HTTP; ``spawn`` starts a
new node process.

Exit codes: 0 ok (``add`` also when the other node has not accepted us yet: it says so) · 1 the
other node is unreachable or refused, or a spawn failed · 2 bad arguments (no such member) · 3 keys
locked · 4 database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, err, fail, load, out, print_json, reporting
from colony.cli.identity import announce
from colony.federation import membership
from colony.federation.announce import own_url
from colony.federation.colony_state import ColonyOut, colony_status
from colony.federation.errors import FederationError, PeerUnreachable
from colony.federation.peers import PeerOut, PeersOut, add_peer, peer_table, remove_peer
from colony.identity.keys import decode_npub
from colony.node import Node

__all__ = ["peers_app", "spawn"]

peers_app = typer.Typer(
    name="peers",
    help=("The nodes of this node's colony: add one by URL (or invite it), list them with their liveness and "
          "role, remove one, and see this node's view (the queen, the term, refused requests).\n\n"
          "Exit codes: 0 ok · 1 unreachable or refused · 2 bad arguments · 3 keys locked · 4 database."),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print as JSON (times in Unix seconds).")]


@contextmanager
def _node() -> Iterator[Node]:
    settings = load()
    with reporting():
        node = Node(settings)
        try:
            announce(node.keyring.ensure(announce=False))
            yield node
        finally:
            node.db.close()


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0.0, time.time() - ts)
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago" if seconds < 7200 else \
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%MZ")


def _resolve(node: Node, key: str) -> str:
    """A member's full key from its hex key, a prefix of at least 8 hex digits, or its npub."""
    text = key.strip().lower()
    if text.startswith("npub1"):
        try:
            return decode_npub(text)
        except ValueError as exc:
            fail(f"{key!r} is not a valid npub: {exc}", ExitCode.USAGE)
    found = [p.pubkey for p in peer_table(node).peers if p.pubkey.startswith(text)]
    if len(text) < 8 or len(found) != 1:
        fail(f"no single member matches {key!r}" if len(text) >= 8 else "give at least 8 hex digits of the key",
             ExitCode.USAGE, "colony peers list shows the members' keys")
    return found[0]


def _origin(view: PeersOut, p: PeerOut) -> str:
    """How a member came: ``operator``, ``spawn``, ``invite``, or ``introduced by NAME``."""
    if p.introduced_by is None:
        return p.added_by
    by = next((q for q in view.peers if q.pubkey == p.introduced_by), None)
    return f"introduced by {escape(by.name) if by is not None and by.name else p.introduced_by[:16] + '…'}"


def _table(view: PeersOut) -> Table:
    table = Table(title=f"colony of {view.me.npub[:16]}… · queen term {view.term}", title_justify="left")
    for column in ("name", "key", "url", "status", "role", "live", "last seen", "added by", "agents"):
        table.add_column(column)
    for p in view.peers:
        status = f"removed ({p.removed_reason})" if p.status == "removed" and p.removed_reason else p.status
        table.add_row(escape(p.name or "—"), p.pubkey[:16] + "…", escape(p.url), escape(status),
                      "[bold]queen[/]" if p.role == "queen" else "member",
                      "[green]live[/]" if p.live else "[red]dead[/]" if p.status == "trusted" else "—",
                      _ago(p.last_seen), _origin(view, p), escape(", ".join(p.agents)))
    return table


@peers_app.command("list")
def list_peers(as_json: JsonOpt = False) -> None:
    """List the members this node knows: status (and why removed), role, liveness, last seen, URL,
    how each came (added, spawned, invited, or introduced by which member), agents.

    Examples:

        colony peers list

        colony peers list --json
    """
    with _node() as node:
        view = peer_table(node)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    if not view.peers:
        out.print("no peers yet: [bold]colony peers add URL[/] or [bold]colony spawn NAME[/]")
        return
    out.print(_table(view))


@peers_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The other node's base URL, e.g. http://127.0.0.1:8421.")],
    invite: Annotated[str | None, typer.Option("--invite", help="A token from `colony peers invite` there.")] = None,
    pubkey: Annotated[str | None, typer.Option("--pubkey", help="Refuse the node unless it has this key (hex).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Trust the node at URL (after verifying its signed hello) and ask it to accept this node.

    It accepts when its operator added this node too, or with an invite it issued. Until then
    this node's side is recorded and the command says the other side is pending.

    Examples:

        colony peers add http://127.0.0.1:8421

        colony peers add http://127.0.0.1:8421 --invite colony-invite-…
    """
    if not url.startswith(("http://", "https://")):
        fail(f"{url!r} is not an http(s) URL", ExitCode.USAGE)
    with _node() as node:
        try:
            result = asyncio.run(add_peer(node, url, invite=invite, expect=pubkey))
        except PeerUnreachable as exc:
            fail(str(exc), ExitCode.FAILED, "is that node running (colony up) and is the URL right?")
        except FederationError as exc:
            fail(str(exc), ExitCode.FAILED)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    peer = result.peer
    out.print(f"[green]trusted[/] {escape(peer.name or '—')} {peer.pubkey} at {escape(peer.url)}", highlight=False)
    if result.joined:
        out.print("it accepted this node: you are both members now", highlight=False)
    else:
        err.print(f"[yellow]pending:[/] {escape(result.message or '')}", highlight=False)


@peers_app.command("remove")
def remove(key: Annotated[str, typer.Argument(help="The member's key (hex, a prefix of ≥ 8, or npub).")],
           as_json: JsonOpt = False) -> None:
    """Remove a member: its requests are refused and it is sent nothing from now on.

    Examples:

        colony peers remove 3bf0c63f

        colony peers remove npub1…
    """
    with _node() as node:
        try:
            peer = remove_peer(node, _resolve(node, key))
        except FederationError as exc:
            fail(str(exc), ExitCode.USAGE)
    if as_json:
        print_json(peer.model_dump(mode="json"))
    else:
        out.print(f"removed {escape(peer.name or '—')} {peer.pubkey}", highlight=False)


@peers_app.command("invite")
def invite(ttl: Annotated[int, typer.Option("--ttl", min=60, max=30 * 86_400, help="Seconds it stays valid.")] = 3600,
           as_json: JsonOpt = False) -> None:
    """Issue a one-time invite for another node (shown once; only its hash is kept).

    Examples:

        colony peers invite

        colony peers invite --ttl 600 --json
    """
    with _node() as node:
        made = membership.new_invite(node.db, ttl)
        url = own_url(node)
    if as_json:
        print_json({"token": made.token, "expires_at": made.expires_at, "url": url})
        return
    print(made.token)
    when = datetime.fromtimestamp(made.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    err.print(f"valid once, until {when}. On the other node run:\n  colony peers add {url} --invite {made.token}",
              highlight=False)


def _colony(colony: ColonyOut) -> None:
    """Replicas, equivocation proofs, federated averaging and Psi, below the member table."""
    learning = colony.learning
    if learning.enabled:
        who = ", ".join(f"{c.node[:8]}… ×{c.samples} ({c.weight:.2f})" for c in learning.contributors) or "none yet"
        out.print(f"learning: canonical round {learning.round} · predictor at round {learning.predictor_round}, "
                  f"{learning.samples_since_round} samples since · contributors: {who}"
                  + (f" · open pool: {len(learning.pool)}" if learning.pool else ""), highlight=False)
    else:
        out.print(f"learning: off — {learning.reason} (kept canonical round {learning.round})", highlight=False)
    now = colony.psi.now
    out.print(f"Psi {float(now['psi']):.3f} (intelligence {float(now['intelligence']):.2f}, sync "
              f"{float(now['sync']):.2f}, diversity {float(now['diversity']):.2f}, velocity "
              f"{float(now['velocity']):.2f}; {now['nodes']} nodes) · {len(colony.psi.series)} readings kept",
              highlight=False)
    out.print(f"equivocation proofs held: {colony.equivocations}", highlight=False)
    if not colony.replicas:
        return
    table = Table(title="replicas of the members' ledgers", title_justify="left")
    for column in ("member", "last sync", "in sync", "member root", "entries", "problems"):
        table.add_column(column)
    for r in colony.replicas:
        table.add_row(escape(r.name or r.origin[:16] + "…"), _ago(r.last_sync_at),
                      "[red]convicted[/]" if r.convicted_at else "[green]yes[/]" if r.in_sync else "no",
                      (r.remote_root or "—")[:16], str(r.entries),
                      str(r.problems) + (f": {escape(r.last_problems[0])}" if r.last_problems else ""))
    out.print(table)


@peers_app.command("status")
def show_status(as_json: JsonOpt = False) -> None:
    """This node's view of its colony: the queen and term, live and dead members, refused requests,
    the replicas of the members' ledgers, federated averaging and Psi.

    Examples:

        colony peers status

        colony peers status --json
    """
    with _node() as node:
        view = colony_status(node)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    me = view.me
    queen = "this node" if view.queen == me.pubkey else (view.queen[:16] + "…" if view.queen else "none")
    out.print(f"node {me.pubkey} at {escape(me.url)} · {'running' if me.running else 'not running'} · "
              f"role [bold]{me.role}[/]", highlight=False)
    out.print(f"queen: {queen} · term {view.term} · heartbeat {view.heartbeat_s:g}s", highlight=False)
    out.print(f"members: {len(view.live)} live, {len(view.dead)} dead", highlight=False)
    incidents = ", ".join(f"{k} {n}" for k, n in sorted(view.incidents.items())) or "none"
    out.print(f"refused requests: {incidents}", highlight=False)
    pending = sum(view.outbox_pending.values())
    out.print(f"messages waiting for delivery: {pending}", highlight=False)
    if view.peers:
        out.print(_table(view))
    _colony(view.colony)


def spawn(
    name: Annotated[str, typer.Argument(help="The new node's name (lowercase letters, digits, '-', '_').")],
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Its port (default: a free one).")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="Its data directory (default: <home>/nodes/NAME).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a new node from this one, start it, and make it a member of this node's colony.

    The new node has its own data directory, keys (and so wallet), passphrase file and port, runs
    as a detached `colony up` (log and pid file in its directory) and joins this node with a
    one-time invite. Stop it with: kill $(cat DIR/colony.pid).

    Examples:

        colony spawn worker1

        colony spawn worker2 --port 8422 --dir ~/colony-nodes/worker2
    """
    from colony.federation.spawn import spawn as make

    settings = load()
    with reporting():
        try:
            made = make(settings, name, port=port, directory=directory)
        except FederationError as exc:
            fail(str(exc), ExitCode.USAGE if exc.reason == "invalid" else ExitCode.FAILED)
    if as_json:
        print_json({"name": made.name, "url": made.url, "pubkey": made.pubkey, "home": str(made.home), "pid": made.pid,
                    "log": str(made.log), "joined_live": made.joined_live})
        return
    out.print(f"[green]spawned[/] {made.name} {made.url} {made.pubkey}", highlight=False)
    err.print(f"data in {made.home} · pid {made.pid} · log {made.log}"
              + ("" if made.joined_live else " · this node was not running: it finds the new node when it starts"),
              highlight=False)
