"""The EVM ``exact`` rail (EIP-3009): the chain side of paying over x402 with a token.

A payer signs an EIP-3009 ``TransferWithAuthorization``; the facilitator checks it and calls
the token's ``transferWithAuthorization``, paying the gas. All of that is the official SDK's
(``x402.mechanisms.evm.exact``); this package names the chain and token (`EvmRail`), wires the
SDK's client, server and facilitator parts to it (`chain`), carries Colony's own EIP-3009 token
for chains that have none (`token`, ``contracts/``) and starts local chains with it deployed
(`local`: `InProcessChain`, `Anvil` — import them from there, they are for tests and demos).

May import: `colony.errors`, pydantic, and (inside functions) web3, eth_account, eth-tester
and x402. Nothing here knows about HTTP routes, the ledger or the market.
"""

from __future__ import annotations

from colony.payments.evm.chain import (
    IN_PROCESS_RPC_URL,
    EvmRail,
    RailMismatchError,
    allowed_asset,
    client_scheme,
    facilitator_scheme,
    price,
    server_scheme,
    token_balance,
    verify_rail,
    web3_for,
)
from colony.payments.evm.token import TokenArtefact, deploy_token, load_artefact, token_contract

__all__ = [
    "IN_PROCESS_RPC_URL",
    "EvmRail",
    "RailMismatchError",
    "TokenArtefact",
    "allowed_asset",
    "client_scheme",
    "deploy_token",
    "facilitator_scheme",
    "load_artefact",
    "price",
    "server_scheme",
    "token_balance",
    "token_contract",
    "verify_rail",
    "web3_for",
]
