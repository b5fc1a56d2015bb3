"""The state root: a Merkle tree over account heads, so two replicas compare in one hash.

Shape: a 16-ary prefix tree over the hex account ids, `DEPTH` levels deep. A leaf is one
account's head, ``H(account, seq, head hash, balance)``; a node at depth `DEPTH` (a bucket)
hashes the leaves of the accounts whose ids start with its prefix; a node above hashes its 16
child slots in hex-digit order (zeros where a subtree is empty); the root is the node of the
empty prefix. Every hash is domain-separated, so a leaf can never be read as a node.

Comparing two replicas: equal roots mean equal heads everywhere. Otherwise `diff` walks down
only the children whose hashes differ, asking the other side for the child hashes of one
prefix at a time — about ``k·DEPTH`` questions for k differing accounts, whatever the total
number of accounts. Answers are checked against the hash the parent announced, so a replica
that lies about its tree is caught at the first inconsistent level.

Only hashing and walking here; the store keeps the tree up to date inside each write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "DEPTH",
    "EMPTY_ROOT",
    "ChildSource",
    "TreeDiff",
    "bucket_hash",
    "children_of",
    "diff",
    "hash_of",
    "leaf_hash",
    "node_hash",
    "root_of",
    "tree_of",
    "update_paths",
]

#: Levels of hex digits above the buckets: 16**4 = 65,536 buckets, a handful of accounts each up
#: to a few hundred thousand accounts.
DEPTH = 4
HEX = "0123456789abcdef"
_LEAF = b"colony-ledger/leaf\x00"
_NODE = b"colony-ledger/node\x00"
_BUCKET = b"colony-ledger/bucket\x00"
_EMPTY = bytes(32)  # an empty child slot (no sha256 output is all zeros in practice)

#: Children of a prefix: hex digit → subtree hash above `DEPTH`; account id → leaf hash at it.
ChildSource = Callable[[str], Mapping[str, str]]


def leaf_hash(account: str, seq: int, head: str, balance: int) -> str:
    return hashlib.sha256(_LEAF + f"{account}:{seq}:{head}:{balance}".encode()).hexdigest()


def _slots(children: Mapping[str, str]) -> bytes:
    return b"".join(bytes.fromhex(children[c]) if c in children else _EMPTY for c in HEX)


def node_hash(children: Mapping[str, str]) -> str:
    """A node above the buckets: the hash of its 16 child slots in order (an empty one is zeros).

    Fixed slots let the store keep a node as one row and update one slot without reading the
    node's siblings: two paths of `DEPTH` rows per transfer, whatever the number of accounts.
    """
    return hashlib.sha256(_NODE + _slots(children)).hexdigest()


def bucket_hash(leaves: Mapping[str, str]) -> str:
    """A bucket: the hash of its accounts' leaves, by account id."""
    body = "".join([f"{account}={leaf};" for account, leaf in sorted(leaves.items())])
    return hashlib.sha256(_BUCKET + body.encode()).hexdigest()


def hash_of(prefix: str, children: Mapping[str, str]) -> str:
    return bucket_hash(children) if len(prefix) == DEPTH else node_hash(children)


def children_of(slots: bytes) -> dict[str, str]:
    """The non-empty children stored in a node's slots, by hex digit."""
    out = {}
    for i, c in enumerate(HEX):
        part = slots[32 * i:32 * (i + 1)]
        if part != _EMPTY:
            out[c] = part.hex()
    return out


EMPTY_ROOT = node_hash({})


def update_paths(leaves: Mapping[str, str], buckets: Mapping[str, Mapping[str, str]],
                 slots: Mapping[str, bytes]) -> dict[str, tuple[str, bytes | None]]:
    """New ``(hash, slots)`` of every node on the changed leaves' paths, bottom-up.

    ``leaves``: the changed accounts' new leaf hashes; ``buckets``: the stored leaves of the
    buckets they fall in; ``slots``: the stored slots of the nodes above (absent = empty). Buckets
    come back with slots None.
    """
    out: dict[str, tuple[str, bytes | None]] = {}
    level: dict[str, str] = {}
    for bucket in {a[:DEPTH] for a in leaves}:
        kids = dict(buckets.get(bucket, {}))
        kids.update((a, leaf) for a, leaf in leaves.items() if a[:DEPTH] == bucket)
        level[bucket] = bucket_hash(kids)
        out[bucket] = (level[bucket], None)
    for depth in range(DEPTH - 1, -1, -1):
        parents: dict[str, bytearray] = {}
        for child, value in level.items():
            parent = child[:depth]
            row = parents.setdefault(parent, bytearray(slots.get(parent) or bytes(32 * len(HEX))))
            i = HEX.index(child[depth])
            row[32 * i:32 * (i + 1)] = bytes.fromhex(value)
        level = {}
        for parent, row in parents.items():
            level[parent] = hashlib.sha256(_NODE + row).hexdigest()
            out[parent] = (level[parent], bytes(row))
    return out


def tree_of(leaves: Mapping[str, str]) -> dict[str, tuple[str, dict[str, str]]]:
    """Every node of the tree over ``{account: leaf hash}``: prefix → (hash, children), from scratch."""
    grouped: dict[str, dict[str, str]] = {}
    for account, leaf in leaves.items():
        grouped.setdefault(account[:DEPTH], {})[account] = leaf
    out = {bucket: (bucket_hash(kids), kids) for bucket, kids in grouped.items()}
    level = {bucket: h for bucket, (h, _) in out.items()}
    for depth in range(DEPTH - 1, -1, -1):
        nodes: dict[str, dict[str, str]] = {}
        for child, value in level.items():
            nodes.setdefault(child[:depth], {})[child[depth]] = value
        level = {}
        for prefix, kids in nodes.items():
            level[prefix] = node_hash(kids)
            out[prefix] = (level[prefix], kids)
    return out


def root_of(leaves: Mapping[str, str]) -> str:
    """The root over ``{account: leaf hash}``, computed from scratch (for verification)."""
    found = tree_of(leaves).get("")
    return found[0] if found else EMPTY_ROOT


@dataclass
class TreeDiff:
    """Accounts whose heads differ between two trees, and what finding them cost."""

    accounts: list[str] = field(default_factory=list)
    #: Questions put to the other side (one prefix each).
    asks: int = 0
    #: Child hashes compared.
    comparisons: int = 0


def diff(local: ChildSource, remote: ChildSource, *, remote_root: str | None = None) -> TreeDiff:
    """The accounts whose heads differ, descending only into differing subtrees.

    ``remote_root``, when known (it is what replicas exchange first), is checked against the
    remote's answer for the root; every deeper answer is checked against its parent's hash.
    Raises ValueError when the remote's answers are inconsistent with each other.
    """
    result = TreeDiff()
    expected: dict[str, str | None] = {"": remote_root}
    stack = [""]
    while stack:
        prefix = stack.pop()
        mine = local(prefix)
        theirs = remote(prefix)
        result.asks += 1
        announced = expected.pop(prefix, None)
        if announced is not None and hash_of(prefix, theirs) != announced:
            raise ValueError(f"the other replica's tree is inconsistent at prefix {prefix!r}")
        for label in sorted(set(mine) | set(theirs)):
            result.comparisons += 1
            if mine.get(label) == theirs.get(label):
                continue
            if len(prefix) == DEPTH:
                result.accounts.append(label)
            else:
                child = prefix + label
                stack.append(child)
                expected[child] = theirs.get(label)
    result.accounts.sort()
    return result
