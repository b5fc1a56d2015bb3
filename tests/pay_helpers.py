"""A real x402 v2 seller for the paying-side tests: the official SDK's FastAPI middleware over an
embedded facilitator on a real ledger, served by uvicorn on 127.0.0.1 in a thread.

Each route answers JSON naming itself and echoing the request body; ``before`` runs a callback in
the handler — between the facilitator's verify and its settle — which lets a test change the
world in that window (drain the payer's balance, so settlement fails exactly as a race would).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from x402 import x402FacilitatorSync, x402ResourceServer
from x402.http.middleware.fastapi import payment_middleware
from x402.http.types import PaymentOption, RouteConfig

from colony.ledger import Ledger
from colony.payments.credits import CREDITS_NETWORK, CreditsServerScheme, credits_price
from colony.payments.facilitator import EmbeddedFacilitator, build_facilitator
from colony.server.run import free_port


def credits_option(ledger_key: str, pay_to: str, micro: int) -> PaymentOption:
    """A ``credits`` accept of ``micro`` micro-credits on the ledger of ``ledger_key``."""
    return PaymentOption(scheme="credits", network=CREDITS_NETWORK, pay_to=pay_to, price=credits_price(micro, ledger_key),
                         max_timeout_seconds=120)


class Seller:
    """An x402 server on 127.0.0.1 selling ``routes`` (``"GET /path"`` → accepts; None: free)."""

    def __init__(self, ledger: Ledger, routes: dict[str, list[PaymentOption] | None], *,
                 facilitator: x402FacilitatorSync | None = None, server_schemes: dict[str, Any] | None = None,
                 before: dict[str, Callable[[], None]] | None = None,
                 custom: dict[str, Callable[[Request], Awaitable[Response]]] | None = None) -> None:
        self.facilitator = facilitator or build_facilitator(ledger)
        server = x402ResourceServer(EmbeddedFacilitator(self.facilitator))
        server.register(CREDITS_NETWORK, CreditsServerScheme(ledger.node))
        for network, scheme in (server_schemes or {}).items():
            server.register(network, scheme)
        priced = {route: RouteConfig(accepts=accepts, description=f"the {route} resource", mime_type="application/json")
                  for route, accepts in routes.items() if accepts is not None}
        self.before = before or {}
        #: Routes whose handler ran (a payment was verified), and requests that carried a signed payment.
        self.calls: list[str] = []
        self.signed: list[str] = []
        app = FastAPI()
        gate = payment_middleware(priced, server)

        @app.middleware("http")
        async def x402(request: Request, call_next: Any) -> Any:
            return await gate(request, call_next)

        @app.middleware("http")  # added last, so outermost: sees every request as the client sent it
        async def record(request: Request, call_next: Any) -> Any:
            if request.headers.get("payment-signature"):
                self.signed.append(f"{request.method} {request.url.path}")
            return await call_next(request)

        for route in routes:
            method, path = route.split(" ", 1)
            app.add_api_route(path, self._handler(route), methods=[method])
        for route, answer in (custom or {}).items():  # hand-made answers, outside the SDK's gate
            method, path = route.split(" ", 1)
            app.add_api_route(path, answer, methods=[method])
        self.port = free_port("127.0.0.1")
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self.server.run, name="x402-seller", daemon=True)

    def _handler(self, route: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> JSONResponse:
            self.calls.append(route)
            if route in self.before:
                self.before[route]()
            return JSONResponse({"route": route, "echo": (await request.body()).decode(), "secret": "the paid answer"})

        return handle

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Seller:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the x402 seller did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=20)


@contextmanager
def selling(ledger: Ledger, routes: dict[str, list[PaymentOption] | None], **kw: Any) -> Iterator[Seller]:
    seller = Seller(ledger, routes, **kw).start()
    try:
        yield seller
    finally:
        seller.stop()
