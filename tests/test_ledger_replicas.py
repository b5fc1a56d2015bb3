"""Replicas: comparing two ledgers by their state roots, finding the accounts that differ in
logarithmic steps, and convicting a node that signed two histories (equivocation proofs)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from colony.identity import SchnorrKey
from colony.ledger import (
    MICRO,
    EquivocationProof,
    diff,
    export_lines,
    find_equivocations,
    read_lines,
    verify_equivocation,
)
from colony.ledger.merkle import DEPTH, EMPTY_ROOT, leaf_hash, root_of
from ledger_helpers import open_book


def test_two_databases_that_differ_in_a_few_of_thousands_of_accounts(tmp_path: Path) -> None:
    accounts = 3000
    a = open_book(tmp_path / "a.db", accounts=accounts, funds=MICRO)
    assert a.ledger.verify().ok
    a.close()
    shutil.copy(tmp_path / "a.db", tmp_path / "b.db")
    a = open_book(tmp_path / "a.db", a.node_key)
    b = open_book(tmp_path / "b.db", a.node_key)
    assert a.ledger.root() == b.ledger.root() != EMPTY_ROOT  # equal ledgers compare in one hash
    ids = sorted(r["account"] for r in a.db.query("SELECT account FROM ledger_accounts"))
    changed = {ids[7], ids[1500], ids[2999]}
    b.ledger.mint(ids[7], 5, "differ")
    b.ledger.mint(ids[1500], 5, "differ")
    b.ledger.mint(ids[2999], 5, "differ")
    newcomer = SchnorrKey.generate().public_hex
    b.ledger.mint(newcomer, 1, "only on b")
    changed.add(newcomer)
    assert a.ledger.root() != b.ledger.root()

    calls: list[str] = []

    def remote(prefix: str) -> dict[str, str]:
        calls.append(prefix)
        return b.store.tree_children(prefix)

    found = diff(a.store.tree_children, remote, remote_root=b.ledger.root())
    assert set(found.accounts) == changed
    # Each differing account costs one question per level, however many accounts there are.
    assert found.asks == len(calls) <= 1 + len(changed) * DEPTH
    assert found.asks < 4 * len(changed) * math.log(accounts, 16)
    assert found.comparisons <= 16 * found.asks + len(changed)
    # A replica that lies about one subtree is caught by the hash its parent announced.
    lie = dict(b.store.tree_children(""))
    lie[next(iter(lie))] = "00" * 32
    with pytest.raises(ValueError, match="inconsistent"):
        diff(a.store.tree_children, lambda p: lie if p == "" else b.store.tree_children(p), remote_root=b.ledger.root())
    # The stored root is the root of the heads, recomputed from scratch.
    heads = {acc.account: leaf_hash(acc.account, acc.seq, acc.head, acc.balance) for acc in b.store.accounts()}
    assert root_of(heads) == b.ledger.root()
    a.close()
    b.close()


def _equivocation(tmp_path: Path) -> tuple[EquivocationProof, SchnorrKey]:
    """One node key sequencing two databases: the same account's #1 differs between them."""
    node = SchnorrKey.generate()
    payee = SchnorrKey.generate().public_hex
    one = open_book(tmp_path / "one.db", node)
    two = open_book(tmp_path / "two.db", node)
    one.ledger.mint(payee, 10 * MICRO, "one history")
    two.ledger.mint(payee, 20 * MICRO, "another history")
    feed_one = read_lines(export_lines(one.store))
    feed_two = read_lines(export_lines(two.store))
    [proof] = find_equivocations(feed_one.entries, feed_two.entries)
    one.close()
    two.close()
    return proof, node


def test_two_entries_for_one_account_and_seq_by_one_key_are_a_portable_proof(tmp_path: Path) -> None:
    proof, node = _equivocation(tmp_path)
    assert proof.signer == node.public_hex and verify_equivocation(proof)
    # Portable: anyone checks it from the JSON alone.
    assert verify_equivocation(EquivocationProof.model_validate_json(proof.model_dump_json()))


def test_forged_or_mismatched_proofs_convict_no_one(tmp_path: Path) -> None:
    proof, _ = _equivocation(tmp_path)
    first, second = proof.first, proof.second
    assert not verify_equivocation(EquivocationProof(first=first, second=first))  # the same entry twice
    # A second event whose content was altered (its id no longer matches): not a proof.
    altered = second.model_copy(update={"content": second.content.replace('"seq":1', '"seq":2')})
    assert not verify_equivocation(EquivocationProof(first=first, second=altered))
    # Two entries by different nodes, or for different accounts or seqs, prove nothing.
    (tmp_path / "other").mkdir()
    other, _ = _equivocation(tmp_path / "other")
    assert verify_equivocation(other)
    assert not verify_equivocation(EquivocationProof(first=first, second=other.second))
    # A forged signature over the right id.
    forged = second.model_copy(update={"sig": SchnorrKey.generate().sign(bytes.fromhex(second.id)).hex()})
    assert not verify_equivocation(EquivocationProof(first=first, second=forged))
