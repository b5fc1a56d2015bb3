"""The ledger's wire formats: what is signed, byte for byte, in one place.

Three NIP-01 event kinds (`colony.identity.events.KINDS`), each with canonical JSON content
(keys sorted, no whitespace, non-ASCII verbatim) and no tags:

- ``transfer`` (7100), signed by the **payer**: ``{v, op, from, to, amount, nonce, valid_after,
  valid_before, memo}``; ``op`` is ``transfer`` or ``hold`` (an escrow hold, whose ``to`` may be
  null when the payee is chosen at capture). ``op`` is signed, so a hold cannot be replayed as a
  transfer. The nonce (32 random bytes, hex) is the idempotency key, scoped to the payer.
- ``treasury`` (7102), signed by the **node**: ``{v, op: "mint", account, amount, nonce, reason}``.
- ``ledger_entry`` (7101), signed by the account's **home node**: ``{v, account, seq, prev, kind,
  amount, balance, counterparty, ref, nonce}``; its event id is the entry's hash and the next
  entry's ``prev``. ``ref``/``nonce`` name the authorising event (transfer, hold or treasury).

Parsing is strict: content that is not exactly the canonical serialisation of valid fields is
refused, so every stored field can be recomputed into the signed bytes (`colony ledger verify`
trusts no column it can recompute). Amounts are JSON integers (micro-credits).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from colony.ledger.amounts import MAX_AMOUNT

__all__ = [
    "DELTA",
    "ENTRY_KINDS",
    "GENESIS",
    "MAX_MEMO",
    "MAX_WINDOW_S",
    "EntryBody",
    "EntryKind",
    "MintOrder",
    "TransferAuth",
    "canonical_json",
    "entry_event_id",
    "parse_entry_content",
    "parse_mint_content",
    "parse_transfer_content",
]

#: The longest validity window an authorisation may carry: a nonce older than this can never
#: apply again, whatever happens to the nonce store (tempo-x402's bound).
MAX_WINDOW_S = 300
MAX_MEMO = 256
#: ``prev`` of an account's first entry.
GENESIS = "0" * 64

EntryKind = Literal["debit", "credit", "hold", "capture", "release", "mint"]
ENTRY_KINDS: tuple[EntryKind, ...] = ("debit", "credit", "hold", "capture", "release", "mint")
#: What each kind does to the account's available balance, per unit of ``amount``: a capture
#: moves credits that the hold already took out of the balance, so it changes nothing there.
DELTA: dict[str, int] = {"debit": -1, "credit": 1, "hold": -1, "capture": 0, "release": 1, "mint": 1}

_HEX64 = re.compile(r"[0-9a-f]{64}")


def canonical_json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _hex64(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"{name} must be 64 lowercase hex characters")
    return value


def _amount(value: Any, name: str = "amount") -> int:
    if type(value) is not int or not 0 < value <= MAX_AMOUNT:
        raise ValueError(f"{name} must be an integer number of micro-credits between 1 and {MAX_AMOUNT}")
    return value


def _int(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**53:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _object(content: str, keys: set[str], what: str) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ValueError(f"the {what}'s content is not JSON") from exc
    if not isinstance(data, dict) or set(data) != keys:
        raise ValueError(f"the {what}'s content must have exactly the fields {sorted(keys)}")
    if data.get("v") != 1:
        raise ValueError(f"the {what}'s content has an unknown version (v must be 1)")
    return data


def _require_canonical(content: str, fields: dict[str, Any], what: str) -> None:
    if canonical_json(fields) != content:
        raise ValueError(f"the {what}'s content is not canonical JSON (sorted keys, no spaces)")


@dataclass(frozen=True, slots=True)
class TransferAuth:
    """A payer's signed authorisation (the content of a ``transfer`` event)."""

    op: Literal["transfer", "hold"]
    payer: str
    payee: str | None
    amount: int
    nonce: str
    valid_after: int
    valid_before: int
    memo: str

    def fields(self) -> dict[str, Any]:
        return {"v": 1, "op": self.op, "from": self.payer, "to": self.payee, "amount": self.amount,
                "nonce": self.nonce, "valid_after": self.valid_after, "valid_before": self.valid_before,
                "memo": self.memo}

    def content(self) -> str:
        return canonical_json(self.fields())


_TRANSFER_KEYS = {"v", "op", "from", "to", "amount", "nonce", "valid_after", "valid_before", "memo"}


def parse_transfer_content(content: str) -> TransferAuth:
    """The authorisation in a transfer event's content; ValueError says which field is wrong."""
    d = _object(content, _TRANSFER_KEYS, "transfer authorisation")
    op = d["op"]
    if op not in ("transfer", "hold"):
        raise ValueError("op must be 'transfer' or 'hold'")
    payee = d["to"]
    if payee is None:
        if op == "transfer":
            raise ValueError("a transfer needs a payee (to)")
    else:
        payee = _hex64(payee, "to")
    memo = d["memo"]
    if not isinstance(memo, str) or len(memo) > MAX_MEMO or not memo.isprintable():
        raise ValueError(f"memo must be printable text of at most {MAX_MEMO} characters")
    auth = TransferAuth(op=op, payer=_hex64(d["from"], "from"), payee=payee, amount=_amount(d["amount"]),
                        nonce=_hex64(d["nonce"], "nonce"), valid_after=_int(d["valid_after"], "valid_after"),
                        valid_before=_int(d["valid_before"], "valid_before"), memo=memo)
    _require_canonical(content, auth.fields(), "transfer authorisation")
    return auth


@dataclass(frozen=True, slots=True)
class MintOrder:
    """A node's signed order to create credits (the content of a ``treasury`` event)."""

    account: str
    amount: int
    nonce: str
    reason: str

    def fields(self) -> dict[str, Any]:
        return {"v": 1, "op": "mint", "account": self.account, "amount": self.amount, "nonce": self.nonce,
                "reason": self.reason}

    def content(self) -> str:
        return canonical_json(self.fields())


def parse_mint_content(content: str) -> MintOrder:
    d = _object(content, {"v", "op", "account", "amount", "nonce", "reason"}, "treasury order")
    reason = d["reason"]
    if d["op"] != "mint":
        raise ValueError("a treasury order's op must be 'mint'")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_MEMO or not reason.isprintable():
        raise ValueError(f"a mint needs a reason: printable text of 1 to {MAX_MEMO} characters")
    order = MintOrder(account=_hex64(d["account"], "account"), amount=_amount(d["amount"]),
                      nonce=_hex64(d["nonce"], "nonce"), reason=reason)
    _require_canonical(content, order.fields(), "treasury order")
    return order


class EntryBody(NamedTuple):
    """One journal entry's signed fields (an account's chain link).

    A named tuple rather than a frozen dataclass: verification builds one per entry, and a tuple
    is built several times faster; it is just as immutable.
    """

    account: str
    seq: int
    prev: str
    kind: str
    amount: int
    balance: int
    counterparty: str | None
    ref: str
    nonce: str

    def content(self) -> str:
        return canonical_json({"v": 1, "account": self.account, "seq": self.seq, "prev": self.prev,
                               "kind": self.kind, "amount": self.amount, "balance": self.balance,
                               "counterparty": self.counterparty, "ref": self.ref, "nonce": self.nonce})


#: The canonical content of an entry, written out (keys in sorted order): byte for byte what
#: `canonical_json` gives, several times faster. Verification hashes every entry, so this is its
#: hot path. The result is accepted only if it matches `_ENTRY_SHAPE` exactly — every hex field 64
#: hex digits, every number digits, the kind one of six words — so a tampered field (a quote, a
#: float, a negative number) cannot inject text: it falls back to `canonical_json`.
_ENTRY_FORMAT = ('{"account":"%s","amount":%d,"balance":%d,"counterparty":%s,"kind":"%s","nonce":"%s",'
                 '"prev":"%s","ref":"%s","seq":%d,"v":1}')
_H = "[0-9a-f]{64}"
_ENTRY_SHAPE = re.compile(
    f'\\{{"account":"{_H}","amount":[0-9]+,"balance":[0-9]+,"counterparty":(?:null|"{_H}"),'
    f'"kind":"(?:debit|credit|hold|capture|release|mint)","nonce":"{_H}","prev":"{_H}","ref":"{_H}",'
    f'"seq":[0-9]+,"v":1\\}}')
_EVENT_FORMAT = '[0,"%s",%d,%d,[],"%s"]'


def entry_event_id(body: EntryBody, signer: str, created_at: int, kind: int) -> str:
    """The NIP-01 id of an entry's event (= `colony.identity.events.event_id` of its content)."""
    b = body
    cp = b.counterparty
    if (type(b.amount) is int and type(b.balance) is int and type(b.seq) is int and type(created_at) is int
            and _HEX64.fullmatch(signer) is not None):
        content = _ENTRY_FORMAT % (b.account, b.amount, b.balance, "null" if cp is None else f'"{cp}"', b.kind,
                                   b.nonce, b.prev, b.ref, b.seq)
        if _ENTRY_SHAPE.fullmatch(content) is not None:
            # No backslash or control character inside, so JSON-escaping the content is escaping quotes.
            return hashlib.sha256((_EVENT_FORMAT % (signer, created_at, kind, content.replace('"', '\\"'))).encode()
                                  ).hexdigest()
    return hashlib.sha256(json.dumps([0, signer, created_at, kind, [], b.content()], separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


_ENTRY_KEYS = {"v", "account", "seq", "prev", "kind", "amount", "balance", "counterparty", "ref", "nonce"}


def parse_entry_content(content: str) -> EntryBody:
    d = _object(content, _ENTRY_KEYS, "ledger entry")
    if d["kind"] not in ENTRY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(ENTRY_KINDS)}")
    seq = _int(d["seq"], "seq")
    if seq < 1:
        raise ValueError("seq starts at 1")
    cp = d["counterparty"]
    body = EntryBody(account=_hex64(d["account"], "account"), seq=seq, prev=_hex64(d["prev"], "prev"),
                     kind=d["kind"], amount=_amount(d["amount"]), balance=_int(d["balance"], "balance"),
                     counterparty=None if cp is None else _hex64(cp, "counterparty"),
                     ref=_hex64(d["ref"], "ref"), nonce=_hex64(d["nonce"], "nonce"))
    if body.content() != content:
        raise ValueError("the ledger entry's content is not canonical JSON (sorted keys, no spaces)")
    return body
