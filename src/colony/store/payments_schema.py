"""Migration 10, x402 payments: the facilitator's nonce claims and the payments journal.

``x402_nonces`` is the persistent nonce store of the EVM rail: an EIP-3009 authorisation's
(network, token, payer, nonce) is claimed here *before* the transfer is sent and never released,
even when the send fails (the transaction may still land). Rows are append-only (triggers).
Credits payments need no row here: the ledger claims their nonce in the same transaction that
moves the credits.

``x402_payments`` is the journal of every payment this node received (a paid call) or made (an
agent paying a 402 resource), refusals and approvals included: who paid whom, how much of which
asset, on which scheme, the transaction, the resource, the outcome. Amounts are integer text of
atomic units (an EVM amount may exceed 64 bits). Append-only too.

``x402_prices`` holds the prices set at run time (``colony cartridge deploy … --price``,
``colony price set``): a route pattern, its price in micro-credits and/or token units on the EVM
rail, and the agent that is paid. The running node re-reads it, so a price set from another
process applies without a restart. Integers only: a price is never a float.
"""

from __future__ import annotations

__all__ = ["PAYMENTS_SCHEMA"]

PAYMENTS_SCHEMA = """
CREATE TABLE x402_nonces (
    network TEXT NOT NULL,
    asset TEXT NOT NULL,
    payer TEXT NOT NULL,
    nonce TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    PRIMARY KEY (network, asset, payer, nonce)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER x402_nonces_no_update BEFORE UPDATE ON x402_nonces
BEGIN SELECT RAISE(ABORT, 'x402 nonce claims are append-only'); END;
CREATE TRIGGER x402_nonces_no_delete BEFORE DELETE ON x402_nonces
BEGIN SELECT RAISE(ABORT, 'x402 nonce claims are never released'); END;

CREATE TABLE x402_payments (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    agent TEXT,
    scheme TEXT NOT NULL,
    network TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount TEXT NOT NULL CHECK (amount GLOB '[0-9]*' AND amount NOT GLOB '*[^0-9]*'),
    payer TEXT,
    pay_to TEXT NOT NULL,
    resource TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('settled', 'failed', 'refused', 'denied')),
    reason TEXT,
    tx TEXT
) STRICT;
CREATE INDEX x402_payments_at ON x402_payments(at);
CREATE INDEX x402_payments_agent ON x402_payments(agent, direction, at);
CREATE TRIGGER x402_payments_no_update BEFORE UPDATE ON x402_payments
BEGIN SELECT RAISE(ABORT, 'the payments journal is append-only'); END;
CREATE TRIGGER x402_payments_no_delete BEFORE DELETE ON x402_payments
BEGIN SELECT RAISE(ABORT, 'the payments journal is append-only'); END;

CREATE TABLE x402_prices (
    route TEXT PRIMARY KEY,
    credits INTEGER CHECK (credits IS NULL OR credits > 0),
    evm_amount INTEGER CHECK (evm_amount IS NULL OR evm_amount > 0),
    pay_to TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    CHECK (credits IS NOT NULL OR evm_amount IS NOT NULL)
) STRICT, WITHOUT ROWID;
"""
