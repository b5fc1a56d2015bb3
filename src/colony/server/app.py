"""The node's HTTP application: API routers, web pages, errors, limits, lifespan.

`create_app` is the one place where routers are assembled; a capability adds its own by
appending to `ROUTERS` (or passing ``extra_routers``). The lifespan connects the model in the
background (the node runs degraded until one answers) and, on shutdown, cancels running turns
and waits until each has recorded its cancellation.

The middleware, outermost first: observability (counts and logs everything, refusals too) →
the Host check (421 for names the node is not reached by) → security headers (nosniff
everywhere, no-store on the API) → the body limit (413) → the x402 gate (402 on priced routes,
`colony.server.payments_gate`) → the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse

from colony import __version__
from colony.errors import ColonyError
from colony.mcpx import McpHub
from colony.node import Node
from colony.payments.service import NodePayments
from colony.server.api import API_ROUTERS
from colony.server.api.agent_service import router as agent_service_router
from colony.server.api.agents import router as api_agents_router
from colony.server.api.backup import router as api_backup_router
from colony.server.api.bench_colony import router as bench_colony_router
from colony.server.api.federation import federation_router, member_caller, peers_router
from colony.server.api.federation_ledger import peer_check
from colony.server.api.federation_ledger import router as federation_ledger_router
from colony.server.api.federation_market import router as federation_market_router
from colony.server.api.governance import router as api_governance_router
from colony.server.api.health import memory_check
from colony.server.api.identity import router as api_identity_router
from colony.server.api.ledger import router as api_ledger_router
from colony.server.api.market import router as api_market_router
from colony.server.api.memory import install_memory_metrics
from colony.server.api.payments import router as api_payments_router
from colony.server.api.peers_graph import router as peers_graph_router
from colony.server.api.tasks import router as api_tasks_router
from colony.server.api.x402 import router as x402_router
from colony.server.auth import require_auth
from colony.server.cartridges import router as cartridges_router
from colony.server.errors import install_error_handlers
from colony.server.headers import SecurityHeaders
from colony.server.hosts import LOOPBACK_NAMES, HostCheck
from colony.server.login_limit import LoginLimiter
from colony.server.observe import ObservabilityMiddleware, install_node_collectors, metrics_router, sse_hook
from colony.server.openapi import install_openapi
from colony.server.payments_gate import PaymentGate
from colony.server.turns import ApprovalBroker, TurnManager
from colony.server.web import web_router
from colony.server.web.agents_page import agents_router
from colony.server.web.colony_page import colony_router
from colony.server.web.market_page import market_router
from colony.server.web.tasks_pages import tasks_router
from colony.server.web.wallet_page import wallet_router
from colony.tasks.autonomy import start_in_process

__all__ = ["MAX_BODY_BYTES", "ROUTERS", "create_app"]

#: Larger request bodies are refused with 413 before they are read.
MAX_BODY_BYTES = 2_000_000
#: How often a degraded node retries connecting to a model.
MODEL_RETRY_S = 30.0

ROUTERS: list[APIRouter] = [*API_ROUTERS, metrics_router, web_router]
ROUTERS.append(cartridges_router)  # backend cartridges at /c/{slug}
ROUTERS.append(api_tasks_router)  # durable tasks at /api/v1/tasks
ROUTERS.append(api_backup_router)  # backups into $COLONY_HOME/backups at /api/v1/backup
ROUTERS.append(tasks_router)  # the tasks board and timelines at /tasks
ROUTERS.append(api_identity_router)  # identities, agent cards, NIP-98 routes at /api/v1/identity
ROUTERS.append(api_agents_router)  # the node's agents (profiles, tiers, cost models) at /api/v1/agents
ROUTERS.append(api_ledger_router)  # wallet and ledger at /api/v1/wallet, /api/v1/ledger
ROUTERS.append(wallet_router)  # the Wallet page at /wallet
ROUTERS.append(agents_router)  # the Agents page (list, add, deactivate) at /agents
ROUTERS.append(x402_router)  # the facilitator for other nodes at /x402/{supported,verify,settle}
ROUTERS.append(agent_service_router)  # paid prompts to the node's agents at /x402/agents/{name}/prompt
ROUTERS.append(api_payments_router)  # payments made and received, agents paying URLs at /api/v1/payments
ROUTERS.append(api_governance_router)  # stake and governance at /api/v1/market/{stakes,proposals}; runs due proposals
ROUTERS.append(api_market_router)  # auctions and reputation at /api/v1/market; runs the market worker if enabled
ROUTERS.append(market_router)  # the Market page (auctions, results, reputation, proposals, graph) at /market
ROUTERS.append(federation_router)  # node to node at /federation/v1; runs the federation loop
ROUTERS.append(peers_router)  # the colony's members at /api/v1/peers
ROUTERS.append(peers_graph_router)  # agents and payments across the colony at /api/v1/peers/graph
ROUTERS.append(colony_router)  # the Colony page (nodes, health, Psi, payments across nodes) at /colony
ROUTERS.append(federation_ledger_router)  # the ledger for members' replicas at /federation/v1/ledger (peer_check below)
ROUTERS.append(federation_market_router)  # work across nodes at /federation/v1/market (bids, invoices, escrow)
ROUTERS.append(bench_colony_router)  # the benchmark split across the colony at /api/v1/bench/colony-runs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (declared or streamed) with a JSON 413."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(send, self.limit)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = (
        b'{"code":"too_large","message":"The request body is over '
        + str(limit).encode()
        + b' bytes. Put large content in a workspace file and refer to it."}'
    )
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _watch_model(app: FastAPI, node: Node) -> None:
    """Build the model cascade, then keep checking that its endpoints answer.

    Health must be truthful without probing on the request path: this loop records, every
    `MODEL_RETRY_S`, which providers answer ``GET /models``; health reads the result.
    """
    from colony.llm.detect import fetch_model_names

    while True:
        try:
            cascade = await node.model()
        except ColonyError as exc:
            app.state.model_error = str(exc)
        else:
            reachable: dict[str, str | None] = {}
            for cfg in cascade.configs:
                try:
                    await fetch_model_names(cfg.base_url, api_key=cfg.api_key, timeout_s=3.0)
                    reachable[cfg.name] = None
                except Exception as exc:  # any failure means "not reachable now"; say which
                    reachable[cfg.name] = f"{cfg.base_url} did not answer: {exc or type(exc).__name__}"
            app.state.model_reachable = reachable
            errors = [e for e in reachable.values() if e]
            app.state.model_error = None if len(errors) < len(reachable) else "; ".join(errors) + (
                " — start Ollama (ollama serve), a llama.cpp server or vLLM, or set COLONY_MODEL_BASE_URL"
            )
        await asyncio.sleep(MODEL_RETRY_S)


def create_app(
    node: Node,
    broker: ApprovalBroker,
    *,
    token: str,
    extra_routers: Sequence[APIRouter] = (),
    connect_model: bool = True,
    allowed_hosts: Sequence[str] = LOOPBACK_NAMES,
) -> FastAPI:
    """The ASGI app of a node. ``broker`` must be the approver the node's executor was built with.

    ``allowed_hosts`` are the Host values it answers to (see `colony.server.hosts`): by default the
    loopback names on any port; `colony.server.run.build_server` narrows them to the bound port.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = asyncio.create_task(_watch_model(app, node)) if connect_model else None
        if connect_model:  # a serving node: load the memory and count it now, not on the first health poll
            app.state.memory_check.start()
        uninstall_collectors = install_node_collectors(node)
        uninstall_memory_metrics = install_memory_metrics(node)
        stop_autonomy = start_in_process(node) if node.settings.autonomy_enabled else None  # tasks (T)
        # External MCP servers connect in the background: a slow one must not hold up the node.
        mcp_start = asyncio.create_task(app.state.mcp.start()) if node.settings.mcp_servers else None
        try:
            yield
        finally:
            if mcp_start is not None:
                mcp_start.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mcp_start
                await app.state.mcp.aclose()
            if stop_autonomy is not None:
                await stop_autonomy()
            uninstall_memory_metrics()
            uninstall_collectors()
            if connector is not None:
                connector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connector
            await app.state.memory_check.aclose()
            await app.state.turns.shutdown()
            await node.aclose()

    app = FastAPI(
        # The interactive docs pages load their scripts from a CDN, which a local-first node
        # must not do; the OpenAPI document itself is served below, behind the token.
        openapi_url=None, docs_url=None, redoc_url=None,
        title="Colony node API",
        version=__version__,
        lifespan=lifespan,
        description="A Colony node: chat with streaming, approvals, sessions and the tool-call audit log. "
        "Authenticate with `Authorization: Bearer <token>` (`colony token` prints it).",
    )
    app.state.node = node
    app.state.broker = broker
    app.state.turns = TurnManager(node)
    app.state.mcp = McpHub(node)
    app.state.token = token
    app.state.model_error = "connecting to the model…"
    app.state.model_reachable = {}
    app.state.memory_check = memory_check(node)
    app.state.login_limiter = LoginLimiter()
    install_error_handlers(app)
    openapi = install_openapi(app)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_auth)])
    async def openapi_document() -> JSONResponse:
        return JSONResponse(openapi())

    for router in [*ROUTERS, *extra_routers]:
        app.include_router(router)
    app.dependency_overrides[peer_check] = member_caller  # only the colony's trusted members pull the ledger
    app.state.sse_hook = sse_hook
    app.state.payments = NodePayments(node)
    app.add_middleware(PaymentGate)  # innermost: x402 on priced routes only, after the limits and checks
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HostCheck, hosts=list(allowed_hosts))
    app.add_middleware(ObservabilityMiddleware)  # outermost: counts and logs even the 421s and 413s
    return app
