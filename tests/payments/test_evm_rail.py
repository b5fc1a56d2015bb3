"""The EVM ``exact`` rail through the official x402 SDK, on real chains: the client signs, the
resource server asks the in-process facilitator, the facilitator settles on the token.

Most tests share one in-process chain (eth-tester + py-evm); one runs the same payment on
anvil over HTTP and checks the node is stopped afterwards."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import vyper
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from pydantic import ValidationError
from x402 import (
    NoMatchingRequirementsError,
    x402Client,
    x402Facilitator,
    x402FacilitatorSync,
    x402ResourceServer,
)
from x402.schemas import PaymentPayload, PaymentRequirements, ResourceConfig

from colony.payments.evm import (
    EvmRail,
    RailMismatchError,
    allowed_asset,
    client_scheme,
    facilitator_scheme,
    price,
    server_scheme,
    token_balance,
    token_contract,
    verify_rail,
)
from colony.payments.evm.local import (
    FACILITATOR_GAS_WEI,
    Anvil,
    InProcessChain,
    LocalChain,
    LocalChainError,
    find_anvil,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
PRICE = 10_000  # 0.01 of a 6-decimal token

PAYER = Account.from_key(keccak(text="colony-rail-test-payer"))
BROKE = Account.from_key(keccak(text="colony-rail-test-broke"))
PAYEE = Account.from_key(keccak(text="colony-rail-test-payee")).address
OTHER = Account.from_key(keccak(text="colony-rail-test-other")).address


class Rig:
    """One chain with the SDK's three parts wired to it, as a node and a buyer would."""

    def __init__(self, chain: LocalChain) -> None:
        self.chain = chain
        self.rail = chain.rail
        self.facilitator = x402Facilitator()
        self.facilitator.register([self.rail.network], facilitator_scheme(self.rail, chain.facilitator_key, chain.provider))
        self.sync_facilitator = x402FacilitatorSync()
        self.sync_facilitator.register([self.rail.network], facilitator_scheme(self.rail, chain.facilitator_key, chain.provider))
        self.server = x402ResourceServer(self.facilitator)
        self.server.register(self.rail.network, server_scheme())
        self.server.initialize()

    def client(self, key: Any = PAYER.key) -> x402Client:
        client = x402Client()
        client.register(self.rail.network, client_scheme(key))
        client.set_spend_controls({"allowed_assets": [allowed_asset(self.rail, 100 * PRICE)]})
        return client

    def requirements(self, amount: int = PRICE, pay_to: str = PAYEE, max_timeout_seconds: int = 300) -> PaymentRequirements:
        config = ResourceConfig(
            scheme="exact",
            network=self.rail.network,
            pay_to=pay_to,
            price=price(self.rail, amount),
            max_timeout_seconds=max_timeout_seconds,
        )
        [requirements] = self.server.build_payment_requirements(config)
        return requirements

    async def pay(self, requirements: PaymentRequirements, key: Any = PAYER.key) -> PaymentPayload:
        required = await self.server.create_payment_required_response([requirements])
        payload = await self.client(key).create_payment_payload(required)
        assert isinstance(payload, PaymentPayload)
        return payload

    def balances(self) -> tuple[int, int]:
        return self.chain.balance(PAYER.address), self.chain.balance(PAYEE)

    def facilitator_transactions(self) -> int:
        return int(self.chain.web3.eth.get_transaction_count(self.chain.facilitator))


@pytest.fixture(scope="module")
def rig() -> Rig:
    return Rig(InProcessChain({PAYER.address: 1_000_000}))


async def test_paid_end_to_end_moves_exactly_the_price(rig: Rig) -> None:
    requirements = rig.requirements()
    assert requirements.extra["name"] == "USD Coin" and requirements.extra["version"] == "2"
    assert (requirements.asset, requirements.amount) == (rig.rail.token, str(PRICE))
    payload = await rig.pay(requirements)
    authorization = payload.payload["authorization"]
    assert authorization["validAfter"] == "0"  # the SDK client's default, which the token accepts
    assert authorization["value"] == str(PRICE)
    before = rig.balances()

    verified = await rig.server.verify_payment(payload, requirements)
    assert (verified.is_valid, verified.payer) == (True, PAYER.address)
    settled = await rig.server.settle_payment(payload, requirements)

    assert settled.success, settled.error_reason
    assert (settled.payer, settled.network) == (PAYER.address, rig.rail.network)
    assert rig.balances() == (before[0] - PRICE, before[1] + PRICE)
    assert token_balance(rig.rail, PAYEE, rig.chain.provider) == before[1] + PRICE
    receipt = rig.chain.web3.eth.get_transaction_receipt(settled.transaction)
    assert receipt["status"] == 1 and receipt["from"] == rig.chain.facilitator


async def test_replayed_payment_is_refused(rig: Rig) -> None:
    requirements = rig.requirements()
    payload = await rig.pay(requirements)
    assert (await rig.server.settle_payment(payload, requirements)).success
    before = rig.balances()

    gas_spent = rig.facilitator_transactions()

    verified = await rig.server.verify_payment(payload, requirements)
    assert (verified.is_valid, verified.invalid_reason) == (False, "invalid_exact_evm_nonce_already_used")
    settled = rig.sync_facilitator.settle(payload, requirements)
    assert (settled.success, settled.error_reason) == (False, "invalid_exact_evm_nonce_already_used")
    assert settled.transaction == "" and rig.facilitator_transactions() == gas_spent  # nothing broadcast
    assert rig.balances() == before


async def test_sdk_default_settle_broadcasts_a_replay_and_pays_its_gas(rig: Rig) -> None:
    """Why `facilitator_scheme` simulates in settle: the SDK's default does not."""
    unsimulated = x402FacilitatorSync()
    unsimulated.register(
        [rig.rail.network],
        facilitator_scheme(rig.rail, rig.chain.facilitator_key, rig.chain.provider, simulate_in_settle=False),
    )
    requirements = rig.requirements()
    payload = await rig.pay(requirements)
    assert (await rig.server.settle_payment(payload, requirements)).success
    before, gas_spent = rig.balances(), rig.facilitator_transactions()
    settled = unsimulated.settle(payload, requirements)
    assert (settled.success, settled.error_reason) == (False, "transaction_failed")
    assert rig.chain.web3.eth.get_transaction_receipt(settled.transaction)["status"] == 0
    assert rig.facilitator_transactions() == gas_spent + 1
    assert rig.balances() == before


@pytest.mark.parametrize("signed_amount", [PRICE + 1, PRICE - 1], ids=["overpayment", "underpayment"])
async def test_amount_other_than_the_price_is_refused(rig: Rig, signed_amount: int) -> None:
    payload = await rig.pay(rig.requirements(amount=signed_amount))
    requirements = rig.requirements()
    before = rig.balances()
    verified = rig.sync_facilitator.verify(payload, requirements)
    assert (verified.is_valid, verified.invalid_reason) == (False, "invalid_exact_evm_payload_authorization_value_mismatch")
    settled = rig.sync_facilitator.settle(payload, requirements)
    assert (settled.success, settled.error_reason) == (False, "invalid_exact_evm_payload_authorization_value_mismatch")
    assert rig.balances() == before


async def test_payment_to_another_recipient_is_refused(rig: Rig) -> None:
    payload = await rig.pay(rig.requirements(pay_to=OTHER))
    verified = rig.sync_facilitator.verify(payload, rig.requirements(pay_to=PAYEE))
    assert (verified.is_valid, verified.invalid_reason) == (False, "invalid_exact_evm_payload_recipient_mismatch")


async def test_authorisation_about_to_expire_is_refused(rig: Rig) -> None:
    # The client signs validBefore = now + maxTimeoutSeconds; the facilitator wants 6 s of margin.
    requirements = rig.requirements(max_timeout_seconds=3)
    payload = await rig.pay(requirements)
    verified = rig.sync_facilitator.verify(payload, requirements)
    assert (verified.is_valid, verified.invalid_reason) == (False, "invalid_exact_evm_payload_authorization_valid_before")


async def test_high_s_signature_passes_the_sdk_but_not_the_token(rig: Rig) -> None:
    requirements = rig.requirements()
    payload = await rig.pay(requirements)
    signature = bytes.fromhex(payload.payload["signature"].removeprefix("0x"))
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v if v >= 27 else 1 - v])
    tampered = payload.model_copy(update={"payload": {**payload.payload, "signature": "0x" + twin.hex()}})
    before = rig.balances()

    verified = rig.sync_facilitator.verify(tampered, requirements)
    assert (verified.is_valid, verified.invalid_reason) == (False, "invalid_exact_evm_payload_signature")
    assert "invalid signature" in (verified.invalid_message or "")  # the token's revert, from the simulation
    settled = rig.sync_facilitator.settle(tampered, requirements)
    assert (settled.success, settled.error_reason) == (False, "invalid_exact_evm_payload_signature")
    assert rig.balances() == before
    # the original, low-s signature is still good
    assert (await rig.server.settle_payment(payload, requirements)).success


async def test_payer_without_funds_is_refused(rig: Rig) -> None:
    requirements = rig.requirements()
    payload = await rig.pay(requirements, key=BROKE.key)
    verified = rig.sync_facilitator.verify(payload, requirements)
    assert (verified.is_valid, verified.invalid_reason) == (False, "invalid_exact_evm_insufficient_balance")


async def test_contract_wallet_pays_through_the_bytes_signature_form(rig: Rig) -> None:
    """An EIP-1271 payer's long signature makes the SDK call the token's `bytes` overload."""
    chain = rig.chain
    out = vyper.compile_code((Path(__file__).parent / "EIP1271Wallet.vy").read_text(), output_formats=["abi", "bytecode"])
    factory = chain.web3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
    wallet = chain.web3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": chain.deployer}))["contractAddress"]
    chain.mint(wallet, PRICE)
    requirements = rig.requirements()
    template = await rig.pay(requirements)
    authorization = {**template.payload["authorization"], "from": wallet}
    domain = {"name": "USD Coin", "version": "2", "chainId": rig.rail.chain_id, "verifyingContract": rig.rail.token}
    fields = [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ]
    message = {
        "from": wallet,
        "to": authorization["to"],
        "value": int(authorization["value"]),
        "validAfter": int(authorization["validAfter"]),
        "validBefore": int(authorization["validBefore"]),
        "nonce": bytes.fromhex(authorization["nonce"].removeprefix("0x")),
    }
    signable = encode_typed_data(domain_data=domain, message_types={"TransferWithAuthorization": fields}, message_data=message)
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    payload = template.model_copy(
        update={"payload": {"authorization": authorization, "signature": "0x" + (digest * 3 + b"\x01\x02\x03\x04").hex()}}
    )

    assert (await rig.server.verify_payment(payload, requirements)).is_valid
    payee_before = chain.balance(PAYEE)
    settled = await rig.server.settle_payment(payload, requirements)
    assert settled.success, settled.error_reason
    assert (chain.balance(wallet), chain.balance(PAYEE)) == (0, payee_before + PRICE)


async def test_client_pays_only_assets_it_allows(rig: Rig) -> None:
    required = await rig.server.create_payment_required_response([rig.requirements()])
    client = x402Client()
    client.register(rig.rail.network, client_scheme(PAYER.key))
    with pytest.raises(NoMatchingRequirementsError, match="spend_controls"):
        await client.create_payment_payload(required)


def test_verify_rail_names_every_mismatch(rig: Rig) -> None:
    verify_rail(rig.rail, rig.chain.provider)
    wrong = rig.rail.model_copy(update={"chain_id": 84532, "token_name": "USDC", "token_version": "1"})
    with pytest.raises(RailMismatchError) as refused:
        verify_rail(wrong, rig.chain.provider)
    assert refused.value.problems == [
        f"chain id is {rig.rail.chain_id}, not 84532",
        "the token's name is 'USD Coin', not 'USDC'",
        "the token's version is '2', not '1'",
    ]
    nowhere = rig.rail.model_copy(update={"token": OTHER})
    with pytest.raises(RailMismatchError, match="no contract at"):
        verify_rail(nowhere, rig.chain.provider)


def test_rail_model_and_prices() -> None:
    rail = EvmRail(
        rpc_url="http://127.0.0.1:8545",
        chain_id=84532,
        token="0x036cbd53842c5426634e7929541ec2318f3dcf7e",
        token_name="USDC",
        token_version="2",
    )
    assert rail.network == "eip155:84532"
    assert rail.token == "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
    assert rail.decimals == 6
    assert price(rail, 1_000) == {"amount": "1000", "asset": rail.token, "extra": {"name": "USDC", "version": "2"}}
    assert allowed_asset(rail, 5_000) == {"network": "eip155:84532", "asset": rail.token, "max_amount_per_payment": "5000"}
    for bad in (0, -1, True, 1.5, "1000"):
        with pytest.raises(ValueError, match="positive integer"):
            price(rail, bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        EvmRail(rpc_url="http://x", chain_id=1, token="0x1234", token_name="USDC", token_version="2")
    with pytest.raises(ValidationError):
        EvmRail(rpc_url="http://x", chain_id=0, token=rail.token, token_name="USDC", token_version="2")


def test_in_process_rail_needs_its_provider(rig: Rig) -> None:
    with pytest.raises(ValueError, match="pass its provider"):
        facilitator_scheme(rig.rail, rig.chain.facilitator_key)


def test_find_anvil_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(LocalChainError, match=r"npm ci --ignore-scripts"):
        find_anvil(tmp_path)
    assert find_anvil().name == "anvil"


async def test_anvil_pays_over_http_and_is_stopped_after(tmp_path: Path) -> None:
    facilitator = Account.from_key(keccak(text="colony-rail-test-facilitator"))
    with Anvil({PAYER.address: 1_000_000}, facilitator_key=facilitator.key) as chain:
        assert chain.facilitator == facilitator.address
        assert chain.web3.eth.get_balance(facilitator.address) == FACILITATOR_GAS_WEI
        pid = chain.pid
        assert pid is not None and os.getpgid(pid) == pid
        port = int(chain.rpc_url.rsplit(":", 1)[1])
        assert chain.rpc_url.startswith("http://127.0.0.1:")
        rail = chain.rail
        assert rail.chain_id == 31337 and chain.provider is None
        verify_rail(rail)
        signable = encode_typed_data(
            domain_data={"name": "USD Coin", "version": "2", "chainId": 31337, "verifyingContract": rail.token},
            message_types={"Nothing": [{"name": "x", "type": "uint256"}]},
            message_data={"x": 0},
        )
        assert token_contract(chain.web3, rail.token).functions.DOMAIN_SEPARATOR().call() == signable.header

        rig = Rig(chain)
        requirements = rig.requirements()
        payload = await rig.pay(requirements)
        before = rig.balances()
        settled = await rig.server.settle_payment(payload, requirements)
        assert settled.success, settled.error_reason
        assert rig.balances() == (before[0] - PRICE, before[1] + PRICE)
        assert token_balance(rail, PAYEE) == before[1] + PRICE  # over the rail's URL
        assert chain.web3.eth.get_transaction(settled.transaction)["from"] == facilitator.address
        replay = rig.sync_facilitator.verify(payload, requirements)
        assert (replay.is_valid, replay.invalid_reason) == (False, "invalid_exact_evm_nonce_already_used")

    assert chain.pid is None
    with pytest.raises(ProcessLookupError):  # gone and reaped: a zombie would still take a signal
        os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
