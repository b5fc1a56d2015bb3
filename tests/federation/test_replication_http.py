"""Replication over HTTP against a real node's ledger routes on loopback: the same result, requests
and bytes as reading the node's store in-process; every request NIP-98 signed; bounded and JSON errors."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from replication_helpers import MarketNode, market_node, serve

from colony.federation import _replica_store as rs
from colony.federation.replica_sources import HttpSource, StoreSource
from colony.federation.replica_wire import SourceError
from colony.federation.replication import SyncResult, sync, sync_reputation, verify_replica
from colony.identity import SchnorrKey, auth_header
from colony.ledger import open_ledger_store
from colony.market.events import MARKET_KINDS
from colony.market.queries import reputation_events
from colony.server.api.federation_ledger import peer_check, router
from colony.server.errors import APIError
from colony.store import Database, open_database
from colony.store.engine import open_engine

ROUTES = "/federation/v1/ledger"


@pytest.fixture
def origin() -> Iterator[MarketNode]:
    found = market_node(accounts=300)
    yield found
    found.close()


@pytest.fixture
def app(origin: MarketNode) -> FastAPI:
    app = FastAPI()
    app.state.node = origin.node
    app.include_router(router)
    return app


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    a, b = open_database(tmp_path / "by_store.db"), open_database(tmp_path / "by_http.db")
    yield a, b
    a.close()
    b.close()


def _store_source(origin: MarketNode) -> StoreSource:
    node = origin.node
    return StoreSource(open_ledger_store(node.db, node.settings),
                       functools.partial(reputation_events, open_engine(node.db, node.settings)))


def _same(a: SyncResult, b: SyncResult) -> None:
    keys = ("mode", "requests", "bytes", "remote_root", "root_before", "root_after", "accounts_differing",
            "accounts_synced", "entries_added", "problems", "proofs")
    assert {k: getattr(a, k) for k in keys} == {k: getattr(b, k) for k in keys}


def test_http_source_gives_the_same_replica_as_the_store_source(
        origin: MarketNode, app: FastAPI, replicas: tuple[Database, Database], request: pytest.FixtureRequest) -> None:
    by_store, by_http = replicas
    node = origin.node.keyring.node().public_hex
    with serve(app) as url:
        http = HttpSource(url, SchnorrKey.generate())
        request.addfinalizer(http.close)
        first = sync(by_http, node, http, page=200)
        _same(sync(by_store, node, _store_source(origin), page=200), first)
        assert first.problems == [] and first.in_sync and first.mode == "scan"
        assert first.entries_added == origin.ledger.store.entry_count()
        assert verify_replica(by_http, node).ok  # the market's holds, captures and releases included

        ledger = origin.ledger
        for i in range(3):
            ledger.pay(origin.keys[i], origin.keys[100 + i].public_hex, 1_000)
        second = sync(by_http, node, http)
        _same(sync(by_store, node, _store_source(origin)), second)
        assert second.mode == "diff" and second.entries_added == 6 and second.in_sync
        assert second.requests <= 2 + 6 * 5

        unchanged = sync(by_http, node, http)
        assert (unchanged.mode, unchanged.requests) == ("unchanged", 1)

        # The market's signed verification and feedback events, verified and kept by both.
        rep_http = sync_reputation(by_http, node, http)
        rep_store = sync_reputation(by_store, node, _store_source(origin))
        assert (rep_http.requests, rep_http.bytes, rep_http.added, rep_http.cursor) == \
            (rep_store.requests, rep_store.bytes, rep_store.added, rep_store.cursor)
        assert rep_http.problems == [] and rep_http.added == 2
        kinds = sorted(k for (k,) in by_http.tuples("SELECT kind FROM federation_reputation"))
        assert kinds == [MARKET_KINDS["verification"], MARKET_KINDS["feedback"]]
        worker = by_http.scalar("SELECT subject FROM federation_reputation WHERE kind = 7204")
        assert origin.node.keyring.by_public_key(worker) is not None  # the winner it verified
        again = sync_reputation(by_http, node, http)
        assert (again.requests, again.added, again.cursor) == (1, 0, rep_http.cursor)
        assert rs.reputation_count(by_http) == 2


def test_every_request_needs_a_fresh_nip98_signature_and_bounded_parameters(
        origin: MarketNode, app: FastAPI) -> None:
    key = SchnorrKey.generate()
    with serve(app) as url, httpx.Client() as client:
        plain = client.get(f"{url}{ROUTES}/root")
        assert plain.status_code == 401 and plain.json()["code"] == "unauthorized"
        signed_url = f"{url}{ROUTES}/root"
        header = {"Authorization": auth_header(key, signed_url, "GET")}
        assert client.get(signed_url, headers=header).status_code == 200
        replayed = client.get(signed_url, headers=header)
        assert replayed.status_code == 401 and replayed.json()["reason"] == "replayed"
        other = f"{url}{ROUTES}/children?prefix=0"  # a header signed for another URL
        assert client.get(other, headers={"Authorization": auth_header(key, signed_url, "GET")}).json()["reason"] == "url"
        for query in ("/entries?account=" + "ab" * 32 + "&limit=5000", "/children?prefix=xyz",
                      "/entries?account=nothex", "/reputation?after=-1"):
            bad = f"{url}{ROUTES}{query}"
            answer = client.get(bad, headers={"Authorization": auth_header(key, bad, "GET")})
            assert answer.status_code == 422 and answer.json()["code"] == "invalid_request", query

        # The membership check is one dependency the app replaces.
        def members_only() -> None:
            raise APIError(403, "forbidden", "Not a member of this colony.")

        app.dependency_overrides[peer_check] = members_only
        with HttpSource(url, key) as source, pytest.raises(SourceError) as refused:
            source.root()
        assert (refused.value.status, refused.value.reason) == (403, "forbidden")


def test_an_unreachable_peer_is_a_problem_in_the_result_not_a_crash(replicas: tuple[Database, Database]) -> None:
    from colony.server.run import free_port

    db, _ = replicas
    with HttpSource(f"http://127.0.0.1:{free_port('127.0.0.1')}", SchnorrKey.generate()) as nobody:
        result = sync(db, "ab" * 32, nobody)
    assert result.mode == "failed" and [p.code for p in result.problems] == ["source_error"]
    assert result.requests == 0 and result.entries_added == 0
