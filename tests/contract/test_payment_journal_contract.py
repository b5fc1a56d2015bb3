"""The x402 payments journal and EVM nonce claims, run on both engines: SQLite and PostgreSQL.

What `PaymentJournal` promises, asserted alike on each: payments listed newest first with
paging, settled spending summed per agent and asset, an authorisation's nonce claimed exactly
once (case-insensitively, and by exactly one of many workers racing for it), and rows that no
one can change or delete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from colony.errors import StoreError
from colony.payments.journal import PaymentJournal, PaymentRecord, SqlitePaymentJournal
from colony.payments.pg_journal import PgPaymentJournal
from colony.store import open_database
from colony.store.pg import open_pg


@dataclass
class Backend:
    name: str
    journal: PaymentJournal
    execute: Callable[[str], object]
    #: A journal on the same database with its own connections (another worker).
    another: Callable[[], PaymentJournal]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    path = tmp_path / "node.db"
    closers: list[Callable[[], None]] = []
    if request.param == "sqlite":
        db = open_database(path)
        closers.append(db.close)

        def another() -> PaymentJournal:
            other = open_database(path)
            closers.append(other.close)
            return SqlitePaymentJournal(other)
        backend = Backend("sqlite", SqlitePaymentJournal(db), db.execute, another)
    else:
        url = request.getfixturevalue("pg_url")
        pg = open_pg(url, max_size=4)
        closers.append(pg.close)

        def another_pg() -> PaymentJournal:
            other = open_pg(url, max_size=2)
            closers.append(other.close)
            return PgPaymentJournal(other)
        backend = Backend("postgres", PgPaymentJournal(pg), pg.execute, another_pg)
    yield backend
    for close in reversed(closers):
        close()


def _record(journal: PaymentJournal, **kw: object) -> int:
    values: dict[str, object] = {"direction": "out", "agent": "scout", "scheme": "exact", "network": "eip155:8453",
                                 "asset": "0xUSDC", "amount": "100", "pay_to": "0xseller", "resource": "https://x/y",
                                 "status": "settled", "at": 1000.0}
    values.update(kw)
    return journal.record(PaymentRecord.model_validate(values))


def test_payments_are_listed_newest_first_filtered_and_paged(backend: Backend) -> None:
    j = backend.journal
    ids = [_record(j, amount=str(n), direction="in" if n % 2 else "out", agent="scout" if n < 3 else "colony")
           for n in range(5)]
    assert ids == sorted(ids)
    assert [p.id for p in j.payments()] == ids[::-1]
    assert [p.amount for p in j.payments(agent="scout", direction="out")] == ["2", "0"]
    assert [p.id for p in j.payments(before_id=ids[2], limit=1)] == [ids[1]]
    [newest] = j.payments(limit=1)
    assert (newest.amount, newest.agent, newest.direction, newest.status, newest.at) == ("4", "colony", "out",
                                                                                          "settled", 1000.0)
    long_text = "r" * 2000
    _record(j, resource=long_text, reason=long_text, status="failed")
    assert len(j.payments(limit=1)[0].resource) == 512


SCOUT = ("ab" * 32, "0x" + "5c" * 20)  # the agent's two payer identities: its key (credits), its EVM address


def test_spending_sums_settled_payments_out_of_one_agent_on_one_asset(backend: Backend) -> None:
    j = backend.journal
    _record(j, amount="30", at=100.0, payer=SCOUT[1])
    _record(j, amount="12", at=200.0, asset="0xusdc", payer=SCOUT[1].upper())  # asset and payer without case
    _record(j, amount="99", at=200.0, status="failed", payer=SCOUT[1])
    _record(j, amount="99", at=200.0, direction="in", payer=SCOUT[1])
    _record(j, amount="99", at=200.0, agent="colony", payer="0x" + "99" * 20)
    _record(j, amount="99", at=200.0, network="eip155:1", payer=SCOUT[1])
    _record(j, amount=str(2**70), at=50.0, payer=SCOUT[1])  # an EVM amount beyond 64 bits, before the window
    assert j.spent_since(SCOUT, "eip155:8453", "0xUSDC", 150.0) == 12
    assert j.spent_since(SCOUT, "eip155:8453", "0xUSDC", 0.0) == 42 + 2**70


def test_spending_is_the_payers_not_every_agent_with_the_same_name(backend: Backend) -> None:
    """Nodes sharing one PostgreSQL each have an agent called ``colony``: one's payments must not
    use up the other's daily limit. Spending is summed by the payer identities, not by the name."""
    j = backend.journal
    other = ("cd" * 32, "0x" + "77" * 20)
    _record(j, agent="colony", amount="40", payer=SCOUT[1])
    _record(j, agent="colony", amount="5", payer=other[1])
    _record(j, agent="colony", amount="3", scheme="credits", payer=other[0])
    assert j.spent_since(SCOUT, "eip155:8453", "0xUSDC", 0.0) == 40
    assert j.spent_since(other, "eip155:8453", "0xUSDC", 0.0) == 8


def test_a_nonce_is_claimed_once_whatever_its_case(backend: Backend) -> None:
    j = backend.journal
    nonce = "0x" + "ab" * 32
    assert not j.nonce_claimed("eip155:8453", "0xUSDC", "0xPayer", nonce)
    assert j.claim_nonce("eip155:8453", "0xUSDC", "0xPayer", nonce)
    assert not j.claim_nonce("eip155:8453", "0xusdc", "0xPAYER", nonce.upper().replace("0X", "0x"))
    assert j.nonce_claimed("eip155:8453", "0xusdc", "0xpayer", nonce)
    assert j.claim_nonce("eip155:1", "0xUSDC", "0xPayer", nonce)  # another network: another authorisation


def test_one_nonce_raced_by_many_workers_has_one_winner(backend: Backend) -> None:
    journals = [backend.another() for _ in range(6)]
    won: list[bool] = []
    start = threading.Barrier(len(journals))

    def claim(j: PaymentJournal) -> None:
        start.wait()
        won.append(j.claim_nonce("eip155:8453", "0xUSDC", "0xPayer", "0x" + "cd" * 32))

    threads = [threading.Thread(target=claim, args=(j,)) for j in journals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 5 + [True]


def test_claims_and_payments_are_append_only(backend: Backend) -> None:
    _record(backend.journal)
    backend.journal.claim_nonce("eip155:8453", "0xUSDC", "0xPayer", "0x" + "ef" * 32)
    for sql in ("UPDATE x402_payments SET amount = '1'", "DELETE FROM x402_payments",
                "UPDATE x402_nonces SET claimed_at = 0", "DELETE FROM x402_nonces"):
        with pytest.raises(StoreError, match=r"append-only|never released"):
            backend.execute(sql)
    if backend.name == "postgres":
        for table in ("x402_payments", "x402_nonces"):
            with pytest.raises(StoreError, match=r"append-only|never released"):
                backend.execute(f"TRUNCATE {table}")
    with pytest.raises(StoreError):
        backend.execute("INSERT INTO x402_payments(at, direction, scheme, network, asset, amount, pay_to, resource, "
                        "status) VALUES (1, 'out', 'exact', 'n', 'a', '1.5', 'p', 'r', 'settled')")  # not digits
    assert len(backend.journal.payments()) == 1
