"""Federation (F): nodes that know each other, signed node-to-node messages, and a queen any node can replace.

A *colony* is a set of nodes that trust each other's keys. Each node keeps its own view: the
members its operator added (or that joined with its invite, or that one of those introduced), when
it last heard from each, and the queen it follows. Nodes talk only through signed NIP-01 events
(kinds 7300-7399) over NIP-98 authenticated HTTP (``/federation/v1/*``); a request from an
unknown, removed or badly signing key, and a replayed or reordered message, is refused and
recorded as an incident.

Modules, by what they do:

- *the transport*: `queen` (the queen rule, pure) · `messages` (kinds, the announcement, message
  events, handlers) · `membership` (trust, invites, joins, incidents) · `announce` (this node's
  announcement) · `outbox` (send: signed, numbered, durable) · `inbox` (receive: the checks,
  handlers) · `roles` (the rule applied to the stored view) · `client` (HTTP to peers) · `peers`
  (the operator's actions and views) · `spawn` (a new node from this one) · `introduce` (members
  introduced to each other, so a colony is a mesh, not a star) · `_store` (the SQL, migrations 17,
  24 and 26);
- *replication*: `replication` (sync one origin from one source, verify, convict, import proofs,
  slash) · `replica_sources` (the node's store, a replica, HTTP) · `replica_verify` ·
  `replica_wire` · `_replica_store` (migration 18);
- *learning and Psi*: `learning` (federated averaging's rules: updates, the capped mean, the
  canonical, adoption) · `psi` (Psi(t) from peer states, its series);
- *the wiring*: `loop` (the background loop of a serving node: heartbeats, links, and every so many
  heartbeats the two below) · `replicate` (syncing the live members' ledgers; equivocation proofs
  as messages) · `learn_task` (rounds of federated averaging as messages) · `colony_facts` (what an
  announcement says for Psi and the rounds) · `colony_state` (Psi over the live members; the
  colony views of ``/api/v1/peers`` and ``colony peers status``);
- *work across nodes*: `remote_market` (the poster's node: announces its auctions to members, takes
  their bids, notifies awards and verdicts, takes signed results, pays remote winners) ·
  `remote_bidding` (a member's node: keeps remote auctions, bids with bonds and stake on its own
  ledger, runs won tasks, returns signed results, settles stake on the verdict) · `remote_pay`
  (the winner's invoice behind the x402 SDK's middleware; the poster's paying client: the escrow
  is captured through the ``credits`` scheme on the poster's ledger) · `remote_wire` (kinds
  7330-7333 and their formats) · `remote_store` (migration 21) · `remote_faults` (what happens when
  a winner, a poster or the queen is lost: result deadlines, re-auctions, bond timeouts, cancel
  notices);
- *the partitioned benchmark*: `partition` (split a coding benchmark run across the live nodes,
  reassign a lost node's problems, merge the verdicts on the queen) · `partition_copy` (every
  participant's copy of a run, its term; the next queen adopts it, an old one stands down) ·
  `partition_worker` (the node's background worker and coordinator) · `partition_wire` (kinds
  7350-7354) · `partition_store` (migrations 23 and 25);
- *the Colony page's data*: `colony_graph` (agents and payments across this node's ledger and its
  verified replicas) · `colony_health` (each member's health as its announcement states it).

Message kinds: 7300 announcement, 7301 note, 7302 claim, 7303 introduction (the transport:
`messages`, `introduce`); 7310 update and 7311
canonical (`learn_task`); 7320 equivocation proof (`replicate`); 7330 auction, 7331 award,
7332 result, 7333 verdict, 7334 award given up or cancelled, 7335 late award declined (`remote_*`,
with 7336-7349 kept for them); 7350-7354 the partitioned benchmark (request, assignment, report,
merged run, a participant's copy of the run).

May import: `colony.identity`, `colony.store`, `colony.config`, `colony.errors`, `colony.ledger`,
`colony.market` (events, stakes, reputation queries), `colony.cognition` (the predictor, the
sphere's Psi, the state store), `colony.bench` (the announced score; the harness, problems, runner
and scoring for partitioned runs), and (for the
announcement's cards and status) `colony.market.profiles`, `colony.payments.prices`,
`colony.tasks`. Surfaces (server, CLI) import this package, never the reverse.
"""

from __future__ import annotations

from colony.federation.errors import FederationError, PeerUnreachable, Refused
from colony.federation.learn_task import CANONICAL_KIND, UPDATE_KIND
from colony.federation.messages import (
    ANNOUNCE_KIND,
    CLAIM_KIND,
    INTRODUCE_KIND,
    NOTE_KIND,
    Announcement,
    Handler,
    RoleView,
    register_handler,
)
from colony.federation.outbox import broadcast, send
from colony.federation.queen import Decision, Role, View, accepts, current_queen, decide, live_nodes
from colony.federation.replicate import PROOF_KIND

__all__ = [
    "ANNOUNCE_KIND",
    "CANONICAL_KIND",
    "CLAIM_KIND",
    "INTRODUCE_KIND",
    "NOTE_KIND",
    "PROOF_KIND",
    "UPDATE_KIND",
    "Announcement",
    "Decision",
    "FederationError",
    "Handler",
    "PeerUnreachable",
    "Refused",
    "Role",
    "RoleView",
    "View",
    "accepts",
    "broadcast",
    "current_queen",
    "decide",
    "live_nodes",
    "register_handler",
    "send",
]
