"""An EVM rail for x402's ``exact`` scheme: which chain and token, and the SDK parts wired to it.

`EvmRail` names everything a price, a payment and a settlement depend on (the RPC endpoint,
chain id, token address and the token's EIP-712 name and version); the functions build the
official SDK's three ``exact`` parts from it. Colony writes no signing or verification code
of its own for this rail: the client signs with `EthAccountSigner`, the facilitator
verifies and settles with `FacilitatorWeb3Signer`.

A chain that lives inside this process (eth-tester) has no URL; pass its web3 ``provider``
wherever one is accepted, and the rail's ``rpc_url`` is `IN_PROCESS_RPC_URL`.

web3, eth_account and x402 are imported when a function needs them: together they take a
second to import and `EvmRail` alone is enough to read configuration.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from colony.errors import ColonyError

if TYPE_CHECKING:
    from web3 import Web3
    from web3.providers.base import BaseProvider
    from x402 import SpendControlAsset
    from x402.mechanisms.evm import FacilitatorWeb3Signer
    from x402.mechanisms.evm.exact import (
        ExactEvmClientScheme,
        ExactEvmFacilitatorScheme,
        ExactEvmServerScheme,
    )

__all__ = [
    "IN_PROCESS_RPC_URL",
    "EvmRail",
    "RailMismatchError",
    "allowed_asset",
    "client_scheme",
    "facilitator_scheme",
    "price",
    "server_scheme",
    "token_balance",
    "verify_rail",
    "web3_for",
]

#: The ``rpc_url`` of a rail whose chain runs inside this process (reach it through its provider).
IN_PROCESS_RPC_URL = "in-process://eth-tester"

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class RailMismatchError(ColonyError):
    """The chain or token behind a rail is not the one the rail describes.

    Signatures bind the chain id, token address, name and version, so a mismatch would
    only surface later as payments refused with ``invalid_exact_evm_payload_signature``.
    """

    def __init__(self, rail: EvmRail, problems: list[str]) -> None:
        self.rail = rail
        self.problems = problems
        super().__init__(
            f"the EVM rail {rail.network} at {rail.rpc_url} does not match its chain: "
            + "; ".join(problems)
            + " — fix the rail's configuration (chain id, token address, name, version)"
        )


def _checksummed(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"not an EVM address: {value!r}")
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(value))


class EvmRail(BaseModel):
    """One chain and one EIP-3009 token that prices are quoted in and payments settle on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpc_url: str = Field(min_length=1)
    chain_id: int = Field(gt=0)
    token: Annotated[str, AfterValidator(_checksummed)]
    token_name: str = Field(min_length=1)
    token_version: str = Field(min_length=1)
    decimals: int = Field(default=6, ge=0, le=36)

    @property
    def network(self) -> str:
        """The CAIP-2 id x402 names the chain by."""
        return f"eip155:{self.chain_id}"


def web3_for(rail: EvmRail, provider: BaseProvider | None = None) -> Web3:
    """A web3 connection to the rail's chain: through ``provider`` if given, else its URL."""
    from web3 import Web3

    if provider is not None:
        return Web3(provider)
    if not rail.rpc_url.startswith(("http://", "https://")):
        raise ValueError(
            f"the rail's rpc_url {rail.rpc_url!r} is not an HTTP endpoint — "
            "for an in-process chain pass its provider"
        )
    return Web3(Web3.HTTPProvider(rail.rpc_url))


def facilitator_scheme(
    rail: EvmRail,
    facilitator_private_key: str | bytes,
    provider: BaseProvider | None = None,
    *,
    confirmation_timeout_seconds: float = 30.0,  # not money
    simulate_in_settle: bool = True,
) -> ExactEvmFacilitatorScheme:
    """The SDK's ``exact`` facilitator, paying gas from ``facilitator_private_key``'s account.

    Register it with an `x402Facilitator` for ``rail.network``. ``provider`` (an in-process
    chain) replaces the rail's URL. The SDK's settle skips the transfer's simulation by
    default and would broadcast a replayed or forged authorisation, paying gas for its
    revert; here settle simulates first (one ``eth_call``) unless told otherwise.
    """
    from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme, ExactEvmSchemeConfig

    return ExactEvmFacilitatorScheme(
        _signer(rail, _key_hex(facilitator_private_key), provider, confirmation_timeout_seconds),
        ExactEvmSchemeConfig(simulate_in_settle=simulate_in_settle),
    )


def server_scheme() -> ExactEvmServerScheme:
    """The SDK's ``exact`` server part; prices on a rail come from `price`, never from dollars.

    Its money parser knows only the SDK's default assets (USDC on public chains): a rail's
    token is priced as an asset amount, which the scheme passes through untouched.
    """
    from x402.mechanisms.evm.exact import ExactEvmServerScheme

    return ExactEvmServerScheme()  # type: ignore[no-untyped-call]


def client_scheme(private_key: str | bytes) -> ExactEvmClientScheme:
    """The SDK's ``exact`` client, signing EIP-3009 authorisations with ``private_key``.

    It needs no RPC: the EIP-712 domain comes from the payment requirements.
    """
    from eth_account import Account
    from x402.mechanisms.evm import EthAccountSigner
    from x402.mechanisms.evm.exact import ExactEvmClientScheme

    return ExactEvmClientScheme(EthAccountSigner(Account.from_key(_key_hex(private_key))))


def price(rail: EvmRail, atomic_amount: int) -> dict[str, Any]:
    """A route price in the SDK's asset-amount form: the token, its domain, an integer amount.

    Amounts are atomic units (10**decimals per token) from end to end; no float or dollar
    string is ever converted here.
    """
    if isinstance(atomic_amount, bool) or not isinstance(atomic_amount, int) or atomic_amount <= 0:
        raise ValueError(f"a price is a positive integer of atomic units, not {atomic_amount!r}")
    return {
        "amount": str(atomic_amount),
        "asset": rail.token,
        "extra": {"name": rail.token_name, "version": rail.token_version},
    }


def allowed_asset(rail: EvmRail, max_amount_per_payment: int) -> SpendControlAsset:
    """The client's permission to pay in the rail's token, capped per payment.

    The SDK's client refuses assets it does not know unless its spend controls list them.
    """
    if isinstance(max_amount_per_payment, bool) or max_amount_per_payment <= 0:
        raise ValueError(f"a cap is a positive integer of atomic units, not {max_amount_per_payment!r}")
    return {"network": rail.network, "asset": rail.token, "max_amount_per_payment": str(max_amount_per_payment)}


def token_balance(rail: EvmRail, address: str, provider: BaseProvider | None = None) -> int:
    """The token balance of ``address`` in atomic units, as the chain reports it now."""
    from colony.payments.evm.token import token_contract

    web3 = web3_for(rail, provider)
    return int(token_contract(web3, rail.token).functions.balanceOf(web3.to_checksum_address(address)).call())


def verify_rail(rail: EvmRail, provider: BaseProvider | None = None) -> None:
    """Check the chain id and the token's code, name, version and decimals against the rail.

    Raises `RailMismatchError` listing every difference; meant for start-up, before the
    first price is quoted on the rail.
    """
    from colony.payments.evm.token import token_contract

    web3 = web3_for(rail, provider)
    problems: list[str] = []
    chain_id = web3.eth.chain_id
    if chain_id != rail.chain_id:
        problems.append(f"chain id is {chain_id}, not {rail.chain_id}")
    if not web3.eth.get_code(web3.to_checksum_address(rail.token)):
        problems.append(f"no contract at {rail.token}")
    else:
        token = token_contract(web3, rail.token)
        for field, expected in (
            ("name", rail.token_name),
            ("version", rail.token_version),
            ("decimals", rail.decimals),
        ):
            try:
                actual = getattr(token.functions, field)().call()
            except Exception as exc:  # a contract without the getter reverts or returns nothing
                problems.append(f"the token has no {field}() ({type(exc).__name__})")
                continue
            if actual != expected:
                problems.append(f"the token's {field} is {actual!r}, not {expected!r}")
    if problems:
        raise RailMismatchError(rail, problems)


def _key_hex(key: str | bytes) -> str:
    if isinstance(key, bytes):
        return "0x" + key.hex()
    return key if key.startswith("0x") else "0x" + key


def _signer(
    rail: EvmRail, key_hex: str, provider: BaseProvider | None, confirmation_timeout_seconds: float  # not money
) -> FacilitatorWeb3Signer:
    from x402.mechanisms.evm import FacilitatorWeb3Signer

    class _ProviderSigner(FacilitatorWeb3Signer):
        """`FacilitatorWeb3Signer` on a given web3 connection.

        The SDK's signer only takes an RPC URL; it keeps its connection in ``_w3`` and reads
        the chain through it alone, so replacing it is all an in-process chain needs.
        """

        def __init__(self, web3: Web3) -> None:
            super().__init__(key_hex, rpc_url="http://127.0.0.1:9", confirmation_timeout_seconds=confirmation_timeout_seconds)
            self._w3 = web3

    if provider is not None:
        return _ProviderSigner(web3_for(rail, provider))
    web3_for(rail)  # refuses a URL that is not HTTP(S), with the fix in the message
    return FacilitatorWeb3Signer(key_hex, rpc_url=rail.rpc_url, confirmation_timeout_seconds=confirmation_timeout_seconds)
