"""The node's charging side: the SDK's resource server over the embedded facilitator, the
route prices, and the journal of paid calls.

`NodePayments` is built once per serving node (`colony.server.app`). Its resource server is the
official `x402ResourceServer` with Colony's ``credits`` server scheme (and the SDK's ``exact`` EVM
scheme when a rail is configured), over `EmbeddedFacilitator` — nothing leaves the process to
verify or settle. Every settlement and every failed one is appended to the payments journal
(payer, amount, scheme, transaction, the route), which the Wallet page and ``colony wallet
payments`` show.

Prices change at run time (another process runs ``colony cartridge deploy --price``), so
`routes` is recomputed when the price table's stamp moves; the gate asks at most once a second.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from x402 import x402FacilitatorSync, x402ResourceServer
from x402.http.types import PaymentOption, RouteConfig
from x402.schemas import AssetAmount, PaymentPayload, PaymentRequirements
from x402.schemas.hooks import SettleFailureContext, SettleResultContext

from colony.config import Settings
from colony.errors import ConfigError, StoreError
from colony.identity.store import DEFAULT_AGENT
from colony.ledger import Ledger, open_ledger_store
from colony.payments.credits import (
    CREDITS_NETWORK,
    CREDITS_SCHEME,
    CreditsServerScheme,
    PayerLocks,
    credits_price,
)
from colony.payments.evm.chain import EvmRail
from colony.payments.evm_guard import GuardedExactEvm
from colony.payments.facilitator import EmbeddedFacilitator, build_facilitator
from colony.payments.journal import PaymentJournal, PaymentRecord, Status, open_journal
from colony.payments.prices import RoutePrice, effective_prices, table_stamp
from colony.payments.remote import CreditsRouter, RemoteFacilitator

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["NodePayments", "Paid", "paid_by", "rail_from_settings"]

log = logging.getLogger(__name__)
#: How often the gate re-reads the price table's stamp.
PRICE_CHECK_S = 1.0


@dataclass(frozen=True)
class Paid:
    """Who paid for the current request, as the upstream handler sees it."""

    payer: str
    scheme: str
    network: str
    asset: str
    amount: str
    pay_to: str


def paid_by(payload: PaymentPayload, requirements: PaymentRequirements) -> Paid:
    """The payer of a verified payment: the ledger authorisation's signer or the EIP-3009 ``from``."""
    inner = payload.payload if isinstance(payload.payload, dict) else {}
    auth = inner.get("authorization")
    payer = ""
    if isinstance(auth, dict):
        value = auth.get("pubkey") if requirements.scheme == CREDITS_SCHEME else auth.get("from")
        payer = value if isinstance(value, str) else ""
    return Paid(payer=payer, scheme=requirements.scheme, network=str(requirements.network),
                asset=requirements.asset, amount=requirements.amount, pay_to=requirements.pay_to)


def rail_from_settings(settings: Settings) -> EvmRail | None:
    """The configured EVM rail; ConfigError naming what is missing when only part of it is set."""
    fields = {"x402_evm_rpc_url": settings.x402_evm_rpc_url, "x402_evm_chain_id": settings.x402_evm_chain_id,
              "x402_evm_token": settings.x402_evm_token, "x402_evm_token_name": settings.x402_evm_token_name,
              "x402_evm_token_version": settings.x402_evm_token_version}
    missing = [k for k, v in fields.items() if v is None]
    if len(missing) == len(fields):
        return None
    if missing:
        raise ConfigError("The EVM rail needs all of COLONY_X402_EVM_RPC_URL, _CHAIN_ID, _TOKEN, _TOKEN_NAME and "
                          f"_TOKEN_VERSION; missing: {', '.join('COLONY_' + m.upper() for m in missing)}.")
    assert settings.x402_evm_rpc_url and settings.x402_evm_chain_id and settings.x402_evm_token
    assert settings.x402_evm_token_name is not None and settings.x402_evm_token_version is not None
    return EvmRail(rpc_url=settings.x402_evm_rpc_url, chain_id=settings.x402_evm_chain_id,
                   token=settings.x402_evm_token, token_name=settings.x402_evm_token_name,
                   token_version=settings.x402_evm_token_version, decimals=settings.x402_evm_token_decimals)


class NodePayments:
    """The SDK resource server, embedded facilitator and prices of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.db = node.db
        self.locks = PayerLocks()
        self._guard = threading.Lock()
        self._stamp: tuple[int, float] | None = None
        self._checked = 0.0
        self._routes: dict[str, RouteConfig] = {}
        self._generation = 0

    # The keys are unlocked only when a price needs them: a node that charges nothing never
    # decrypts its keyring for the gate.
    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(open_ledger_store(self.db, self.node.settings), self.node.keyring.node().schnorr_key)

    @cached_property
    def journal(self) -> PaymentJournal:
        """Where paid calls are recorded and EVM nonces claimed (PostgreSQL when the node has a URL)."""
        return open_journal(self.db, self.node.settings)

    @cached_property
    def rail(self) -> EvmRail | None:
        """The EVM rail of the settings, or None when the node has none (all four settings or none)."""
        return rail_from_settings(self.node.settings)

    @cached_property
    def facilitator(self) -> x402FacilitatorSync:
        facilitator = build_facilitator(self.ledger, locks=self.locks)
        if self.rail is not None:
            from colony.payments.evm.chain import facilitator_scheme

            # The node's own EVM account pays the gas of the transfers it settles.
            gas_key = bytes(self.node.keyring.node().evm_account.key)
            # The guard re-verifies (with the transfer's simulation) under the payer's lock right before
            # it claims the nonce and settles, so the SDK's settle need not simulate a third time.
            scheme = facilitator_scheme(self.rail, gas_key, simulate_in_settle=False)
            facilitator.register([self.rail.network], GuardedExactEvm(scheme, self.journal, locks=self.locks))
        return facilitator

    @cached_property
    def client(self) -> EmbeddedFacilitator:
        """The embedded facilitator: what this node settles itself (and serves at /x402/*)."""
        return EmbeddedFacilitator(self.facilitator)

    @cached_property
    def router(self) -> CreditsRouter:
        """The resource server's view: the embedded facilitator, or a peer's for the peer's credits."""
        key = self.node.keyring.node().schnorr_key
        peers = {p.ledger: RemoteFacilitator(p, key) for p in self.node.settings.x402_peer_ledgers}
        return CreditsRouter(self.client, peers)

    @cached_property
    def server(self) -> x402ResourceServer:
        server = x402ResourceServer(self.router)
        server.register(CREDITS_NETWORK, CreditsServerScheme(self.ledger.node))
        if self.rail is not None:
            from colony.payments.evm.chain import server_scheme

            server.register(self.rail.network, server_scheme())  # type: ignore[arg-type]  # SDK typing
        server.on_after_settle(self._settled)
        server.on_settle_failure(self._settle_failed)
        return server

    # -- prices ---------------------------------------------------------------------------------
    def prices(self) -> list[RoutePrice]:
        return effective_prices(self.db, self.node.settings, DEFAULT_AGENT)

    def current(self) -> tuple[int, dict[str, RouteConfig]]:
        """(generation, routes): the generation moves when the prices changed since the last call."""
        now = time.monotonic()
        with self._guard:
            if self._stamp is not None and now - self._checked < PRICE_CHECK_S:
                return self._generation, self._routes
            self._checked = now
            try:
                stamp = table_stamp(self.db)
            except StoreError as exc:
                # Keep the prices already known. Failing open is safe here: a route a payment
                # would open stays closed without one (the node's token, or "not offered").
                log.warning("x402: cannot read the prices (%s); keeping the %d known routes", exc, len(self._routes))
                return self._generation, self._routes
            if stamp != self._stamp:
                self._routes = self._build_routes(self.prices())
                self._stamp = stamp
                self._generation += 1
            return self._generation, self._routes

    def refresh(self) -> None:
        """Re-read the prices on the next request (after a price was set in this process)."""
        with self._guard:
            self._stamp = None

    def _build_routes(self, prices: list[RoutePrice]) -> dict[str, RouteConfig]:
        names = {i.name: i for i in self.node.keyring.all() if i.role == "agent"}
        routes: dict[str, RouteConfig] = {}
        for price in prices:
            agent = names.get(price.pay_to)
            if agent is None:
                log.warning("x402: the price of %s pays %r, which is not an agent of this node; route not offered",
                            price.route, price.pay_to)
                continue
            accepts: list[PaymentOption] = []
            timeout = self.node.settings.x402_max_timeout_s
            if price.credits is not None:  # this node's credits, then each peer ledger's
                for ledger in [self.ledger.node, *(p.ledger for p in self.node.settings.x402_peer_ledgers)]:
                    accepts.append(PaymentOption(scheme=CREDITS_SCHEME, network=CREDITS_NETWORK,
                                                 pay_to=agent.public_hex, max_timeout_seconds=timeout,
                                                 price=AssetAmount(**credits_price(price.credits, ledger))))
            extra = self._evm_option(price, agent.evm_address, timeout)
            if extra is not None:
                accepts.append(extra)
            if not accepts:
                continue
            routes[price.route] = RouteConfig(accepts=accepts, description=price.description or None,
                                              mime_type="application/json")
        return routes

    def _evm_option(self, price: RoutePrice, address: str, timeout: int) -> PaymentOption | None:
        """The ``exact`` option of a price when the node has an EVM rail."""
        rail = self.rail
        if price.evm_amount is None or rail is None:
            return None
        from colony.payments.evm.chain import price as evm_price

        return PaymentOption(scheme="exact", network=rail.network, pay_to=address, max_timeout_seconds=timeout,
                             price=AssetAmount(**evm_price(rail, price.evm_amount)))

    # -- the journal ------------------------------------------------------------------------------
    def _agent_of(self, pay_to: str) -> str | None:
        for ident in self.node.keyring.all():
            if pay_to.lower() in (ident.public_hex, ident.evm_address.lower()):
                return ident.name
        return None

    def _record(self, payload: Any, requirements: Any, status: Status, reason: str | None,
                tx: str | None, payer: str | None) -> None:
        if not isinstance(payload, PaymentPayload) or not isinstance(requirements, PaymentRequirements):
            return  # a v1 payment: the node offers v2 only, so there is nothing of ours to record
        resource = payload.resource.url if payload.resource is not None else ""
        paid = paid_by(payload, requirements)
        self.journal.record(PaymentRecord(
            direction="in", agent=self._agent_of(requirements.pay_to), scheme=requirements.scheme,
            network=str(requirements.network), asset=requirements.asset, amount=requirements.amount,
            payer=payer or paid.payer or None, pay_to=requirements.pay_to, resource=resource, status=status,
            reason=reason, tx=tx or None))

    async def _settled(self, ctx: SettleResultContext) -> None:
        result = ctx.result
        await asyncio.to_thread(self._record, ctx.payment_payload, ctx.requirements, "settled", None,
                                result.transaction, result.payer)

    async def _settle_failed(self, ctx: SettleFailureContext) -> None:
        await asyncio.to_thread(self._record, ctx.payment_payload, ctx.requirements, "failed",
                                str(ctx.error)[:200], None, None)
