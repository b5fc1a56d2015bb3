"""Colony's EIP-3009 token on a real (in-process) EVM: EIP-712 vectors, the committed build,
and every refusal the token itself must make, called directly without the x402 SDK."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import vyper
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from colony.payments.evm.local import InProcessChain
from colony.payments.evm.token import BYTES_SIGNATURE_ABI, compile_artefact, load_artefact, token_contract

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO_ADDRESS = "0x" + "00" * 20
AUTH_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
#: How a revert surfaces: eth-tester raises on sending, web3 on a call.
REVERTED = (TransactionFailed, ContractLogicError)
BYTES_FORM = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"

PAYER = Account.from_key(keccak(text="colony-token-test-payer"))
PAYEE = Account.from_key(keccak(text="colony-token-test-recipient")).address
PAYEE_ACCOUNT = Account.from_key(keccak(text="colony-token-test-payee"))


@pytest.fixture(scope="module")
def chain() -> InProcessChain:
    return InProcessChain({PAYER.address: 1_000_000}, token_name="USD Coin", token_version="2")


@pytest.fixture(scope="module")
def token(chain: InProcessChain) -> Any:
    return token_contract(chain.web3, chain.rail.token)


def domain(chain: InProcessChain) -> dict[str, Any]:
    return {"name": "USD Coin", "version": "2", "chainId": chain.rail.chain_id, "verifyingContract": chain.rail.token}


def digest(domain_data: dict[str, Any], primary: str, fields: list[dict[str, str]], message: dict[str, Any]) -> bytes:
    signable = encode_typed_data(domain_data=domain_data, message_types={primary: fields}, message_data=message)
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def authorization(value: int = 1_000, *, to: str = PAYEE, valid_after: int = 0, valid_for: int = 3_600) -> dict[str, Any]:
    return {
        "from": PAYER.address,
        "to": to,
        "value": value,
        "validAfter": valid_after,
        "validBefore": int(time.time()) + valid_for,
        "nonce": os.urandom(32),
    }


def sign(chain: InProcessChain, auth: dict[str, Any], primary: str = "TransferWithAuthorization", key: Any = None) -> Any:
    return Account.sign_typed_data(
        (key or PAYER).key, domain_data=domain(chain), message_types={primary: AUTH_FIELDS}, message_data=auth
    )


def args(auth: dict[str, Any]) -> list[Any]:
    return [auth["from"], auth["to"], auth["value"], auth["validAfter"], auth["validBefore"], auth["nonce"]]


def vrs(signed: Any) -> list[Any]:
    return [signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")]


def test_committed_artefact_is_the_build_of_the_source() -> None:
    assert vyper.__version__ == "0.4.3"
    assert compile_artefact() == load_artefact()


def test_eip712_mail_vector() -> None:
    cow = Account.from_key(keccak(text="cow"))
    assert cow.address == "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
    person = [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}]
    mail = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Person": person,
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"}, {"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": 1, "verifyingContract": "0x" + "Cc" * 20},
        "message": {
            "from": {"name": "Cow", "wallet": cow.address},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!",
        },
    }
    signable = encode_typed_data(full_message=mail)
    assert signable.header.hex() == "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    mail_digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert mail_digest.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    signed = cow.sign_message(signable)
    assert (signed.v, hex(signed.r), hex(signed.s)) == (
        28,
        "0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d",
        "0x7299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562",
    )


def test_eip3009_vector_for_usdc_on_base_sepolia() -> None:
    """The USDC/Base-Sepolia domain, and an authorisation digest that eth_account and the SDK
    compute alike (the SDK's own hashing is what its facilitator verifies with)."""
    from x402.mechanisms.evm import hash_domain, hash_eip3009_authorization
    from x402.mechanisms.evm.types import ExactEIP3009Authorization, TypedDataDomain

    payer = Account.from_key(keccak(text="x402-test-payer"))
    assert payer.address == "0x5617DfA1188e415F12b3247BDf942B0a6BB202c6"
    usdc = {"name": "USDC", "version": "2", "chainId": 84532, "verifyingContract": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"}
    message = {
        "from": payer.address,
        "to": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        "value": 10000,
        "validAfter": 1740672089,
        "validBefore": 1740672154,
        "nonce": bytes(range(32)),
    }
    signable = encode_typed_data(domain_data=usdc, message_types={"TransferWithAuthorization": AUTH_FIELDS}, message_data=message)
    assert signable.header.hex() == "71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818"
    sdk_auth = ExactEIP3009Authorization(
        from_address=payer.address,
        to=message["to"],
        value="10000",
        valid_after="1740672089",
        valid_before="1740672154",
        nonce="0x" + bytes(range(32)).hex(),
    )
    sdk_domain = TypedDataDomain(name="USDC", version="2", chain_id=84532, verifying_contract=usdc["verifyingContract"])
    assert hash_domain(sdk_domain) == signable.header
    expected = digest(usdc, "TransferWithAuthorization", AUTH_FIELDS, message)
    assert hash_eip3009_authorization(sdk_auth, 84532, usdc["verifyingContract"], "USDC", "2") == expected
    signed = Account.sign_typed_data(payer.key, usdc, {"TransferWithAuthorization": AUTH_FIELDS}, message)
    assert Account._recover_hash(expected, signature=signed.signature) == payer.address


def test_domain_and_metadata_on_chain(chain: InProcessChain, token: Any) -> None:
    signable = encode_typed_data(
        domain_data=domain(chain), message_types={"TransferWithAuthorization": AUTH_FIELDS}, message_data=authorization()
    )
    assert token.functions.DOMAIN_SEPARATOR().call() == signable.header
    assert token.functions.eip712Domain().call() == [
        b"\x0f",
        "USD Coin",
        "2",
        chain.rail.chain_id,
        chain.rail.token,
        b"\x00" * 32,
        [],
    ]
    assert (token.functions.name().call(), token.functions.version().call(), token.functions.decimals().call()) == (
        "USD Coin",
        "2",
        6,
    )
    assert token.functions.owner().call() == chain.deployer


def test_transfer_with_authorization_moves_exactly_the_value(chain: InProcessChain, token: Any) -> None:
    auth = authorization(1_234)  # validAfter = 0, the SDK client's default
    before = chain.balance(PAYER.address), chain.balance(PAYEE)
    tx = token.functions.transferWithAuthorization(*args(auth), *vrs(sign(chain, auth))).transact({"from": chain.facilitator})
    receipt = chain.web3.eth.wait_for_transaction_receipt(tx)
    assert (chain.balance(PAYER.address), chain.balance(PAYEE)) == (before[0] - 1_234, before[1] + 1_234)
    assert token.functions.authorizationState(PAYER.address, auth["nonce"]).call() is True
    used = token.events.AuthorizationUsed().process_receipt(receipt, errors=DISCARD)
    assert [(e.args.authorizer, e.args.nonce) for e in used] == [(PAYER.address, auth["nonce"])]
    moved = token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert [(e.args.sender, e.args.receiver, e.args.value) for e in moved] == [(PAYER.address, PAYEE, 1_234)]


def test_replayed_authorization_is_refused(chain: InProcessChain, token: Any) -> None:
    auth = authorization(10)
    call = token.functions.transferWithAuthorization(*args(auth), *vrs(sign(chain, auth)))
    call.transact({"from": chain.facilitator})
    balance = chain.balance(PAYER.address)
    with pytest.raises(REVERTED, match="authorization is used or canceled"):
        call.transact({"from": chain.facilitator})
    assert chain.balance(PAYER.address) == balance


def test_high_s_twin_of_a_valid_signature_is_refused(chain: InProcessChain, token: Any) -> None:
    auth = authorization(10)
    signed = sign(chain, auth)
    twin_s, twin_v = SECP256K1_N - signed.s, 55 - signed.v  # 27 <-> 28
    # The twin is a valid ECDSA signature of the same digest by the same key (EIP-2 malleability) ...
    assert Account._recover_hash(
        digest(domain(chain), "TransferWithAuthorization", AUTH_FIELDS, auth), vrs=(twin_v, signed.r, twin_s)
    ) == PAYER.address
    # ... which the token refuses, and the original still works afterwards.
    with pytest.raises(REVERTED, match="invalid signature"):
        token.functions.transferWithAuthorization(
            *args(auth), twin_v, signed.r.to_bytes(32, "big"), twin_s.to_bytes(32, "big")
        ).transact({"from": chain.facilitator})
    token.functions.transferWithAuthorization(*args(auth), *vrs(signed)).transact({"from": chain.facilitator})


def test_signature_by_another_key_or_for_other_terms_is_refused(chain: InProcessChain, token: Any) -> None:
    auth = authorization(10)
    with pytest.raises(REVERTED, match="invalid signature"):
        token.functions.transferWithAuthorization(*args(auth), *vrs(sign(chain, auth, key=Account.create()))).transact(
            {"from": chain.facilitator}
        )
    signed = sign(chain, auth)
    with pytest.raises(REVERTED, match="invalid signature"):
        token.functions.transferWithAuthorization(*args({**auth, "value": 11}), *vrs(signed)).transact({"from": chain.facilitator})
    with pytest.raises(REVERTED, match="invalid signature"):
        token.functions.transferWithAuthorization(*args({**auth, "to": chain.deployer}), *vrs(signed)).transact(
            {"from": chain.facilitator}
        )


def test_garbage_signature_recovering_to_zero_cannot_spend_for_the_zero_address(chain: InProcessChain, token: Any) -> None:
    """ecrecover answers 0x0 for an unrecoverable signature; without the zero check an
    authorisation "from" 0x0 would pass."""
    auth = {**authorization(0), "from": ZERO_ADDRESS}
    with pytest.raises(REVERTED, match="invalid signature"):
        token.functions.transferWithAuthorization(*args(auth), 27, b"\x00" * 32, b"\x00" * 32).transact({"from": chain.facilitator})


def test_validity_window_is_enforced(chain: InProcessChain, token: Any) -> None:
    now = chain.web3.eth.get_block("latest")["timestamp"]
    expired = {**authorization(10), "validBefore": now - 1}
    with pytest.raises(REVERTED, match="authorization is expired"):
        token.functions.transferWithAuthorization(*args(expired), *vrs(sign(chain, expired))).transact({"from": chain.facilitator})
    early = authorization(10, valid_after=now + 3_600, valid_for=7_200)
    with pytest.raises(REVERTED, match="authorization is not yet valid"):
        token.functions.transferWithAuthorization(*args(early), *vrs(sign(chain, early))).transact({"from": chain.facilitator})


def test_bytes_signature_form(chain: InProcessChain, token: Any) -> None:
    """The overload the SDK uses for signatures that are not 65 bytes, served by the fallback."""
    auth = authorization(7)
    signed = sign(chain, auth)
    by_bytes = token.get_function_by_signature(BYTES_FORM)
    before = chain.balance(PAYEE)
    by_bytes(*args(auth), signed.signature).transact({"from": chain.facilitator})
    assert chain.balance(PAYEE) == before + 7
    with pytest.raises(REVERTED, match="authorization is used or canceled"):
        by_bytes(*args(auth), signed.signature).transact({"from": chain.facilitator})
    other = authorization(7)
    with pytest.raises(REVERTED, match="invalid signature"):
        by_bytes(*args(other), sign(chain, other).signature + b"\x00").transact({"from": chain.facilitator})
    assert BYTES_SIGNATURE_ABI in load_artefact().abi


def test_fallback_serves_nothing_else(chain: InProcessChain) -> None:
    for data in ("0x", "0xdeadbeef", "0xdeadbeef" + "00" * 300):
        with pytest.raises(REVERTED, match="unknown function"):
            chain.web3.eth.call({"from": chain.facilitator, "to": chain.rail.token, "data": data})


def test_contract_signer_by_eip1271_with_a_long_signature(chain: InProcessChain, token: Any) -> None:
    wallet = deploy_wallet(chain)
    chain.mint(wallet, 500)
    auth = {**authorization(500), "from": wallet}
    auth_digest = digest(domain(chain), "TransferWithAuthorization", AUTH_FIELDS, auth)
    by_bytes = token.get_function_by_signature(BYTES_FORM)
    with pytest.raises(REVERTED, match="invalid signature"):
        by_bytes(*args(auth), auth_digest * 3 + b"\x01\x02\x03\x05").transact({"from": chain.facilitator})
    by_bytes(*args(auth), auth_digest * 3 + b"\x01\x02\x03\x04").transact({"from": chain.facilitator})
    assert chain.balance(wallet) == 0


def test_receive_with_authorization_only_by_the_payee(chain: InProcessChain, token: Any) -> None:
    chain.send_eth(PAYEE_ACCOUNT.address, 10**17)
    auth = authorization(25, to=PAYEE_ACCOUNT.address)
    signed = sign(chain, auth, primary="ReceiveWithAuthorization")
    call = token.functions.receiveWithAuthorization(*args(auth), *vrs(signed))
    with pytest.raises(REVERTED, match="caller must be the payee"):
        call.transact({"from": chain.facilitator})
    send_signed(chain, PAYEE_ACCOUNT, call)
    assert chain.balance(PAYEE_ACCOUNT.address) == 25
    # A TransferWithAuthorization signature is not a ReceiveWithAuthorization one.
    other = authorization(25, to=PAYEE_ACCOUNT.address)
    with pytest.raises(REVERTED, match="invalid signature"):
        token.functions.receiveWithAuthorization(*args(other), *vrs(sign(chain, other))).call({"from": PAYEE_ACCOUNT.address})


def test_cancelled_authorization_cannot_be_used(chain: InProcessChain, token: Any) -> None:
    auth = authorization(10)
    cancel_fields = [{"name": "authorizer", "type": "address"}, {"name": "nonce", "type": "bytes32"}]
    cancel = Account.sign_typed_data(
        PAYER.key, domain(chain), {"CancelAuthorization": cancel_fields}, {"authorizer": PAYER.address, "nonce": auth["nonce"]}
    )
    receipt = chain.web3.eth.wait_for_transaction_receipt(
        token.functions.cancelAuthorization(PAYER.address, auth["nonce"], *vrs(cancel)).transact({"from": chain.facilitator})
    )
    assert len(token.events.AuthorizationCanceled().process_receipt(receipt, errors=DISCARD)) == 1
    with pytest.raises(REVERTED, match="authorization is used or canceled"):
        token.functions.transferWithAuthorization(*args(auth), *vrs(sign(chain, auth))).transact({"from": chain.facilitator})


def test_only_the_owner_mints_and_balances_cannot_go_negative(chain: InProcessChain, token: Any) -> None:
    with pytest.raises(REVERTED, match="caller is not the owner"):
        token.functions.mint(chain.facilitator, 1).transact({"from": chain.facilitator})
    poor = Account.create()
    auth = {**authorization(1), "from": poor.address}
    signed = sign(chain, auth, key=poor)
    with pytest.raises(REVERTED, match="transfer amount exceeds balance"):
        token.functions.transferWithAuthorization(*args(auth), *vrs(signed)).transact({"from": chain.facilitator})




def deploy_wallet(chain: InProcessChain) -> str:
    source = (Path(__file__).parent / "EIP1271Wallet.vy").read_text()
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    factory = chain.web3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
    receipt = chain.web3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": chain.deployer}))
    return str(receipt["contractAddress"])


def send_signed(chain: InProcessChain, account: Any, call: Any) -> None:
    w3 = chain.web3
    tx = call.build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address), "gas": 200_000, "gasPrice": w3.eth.gas_price}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1
