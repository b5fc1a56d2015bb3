"""EVM payment accounts: one per identity, its own secret, its own signing domain.

An agent pays and is paid on the x402 ``exact`` rail with an ordinary Ethereum account from
`eth_account`. Its secret is drawn independently of the agent's Schnorr key — never derived from
it or the other way round — so a flaw or a leak in one signing domain (BIP-340 over NIP-01 ids
here; ECDSA over EIP-191/712 digests there) says nothing about the other.

What ties the two together publicly is a *binding*: once, at creation, the EVM account signs
(EIP-191 ``personal_sign``) a fixed text naming the agent's Schnorr public key. Agent cards carry
it, so a peer can check that whoever holds the Schnorr identity also controls the payment address
it advertises, without either key ever signing in the other's domain.

`eth_account` takes about a second to import, so it is imported only when an account is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = ["account_from_secret", "binding_text", "new_evm_secret", "prove_binding", "verify_binding"]


def new_evm_secret() -> tuple[bytes, str]:
    """A fresh account: (32-byte secret, checksummed address). Fresh OS randomness, nothing derived."""
    from eth_account import Account

    account = Account.create()
    return bytes(account.key), str(account.address)


def account_from_secret(secret: bytes) -> LocalAccount:
    from eth_account import Account

    account: LocalAccount = Account.from_key(secret)
    return account


def binding_text(public_hex: str, address: str) -> str:
    """What the EVM account signs to vouch for the Schnorr identity it pays for."""
    return f"Colony identity binding v1: EVM account {address} pays for Nostr key {public_hex}"


def prove_binding(secret: bytes, public_hex: str) -> str:
    """The EIP-191 signature (0x-hex, 65 bytes) of `binding_text` by the account of ``secret``."""
    from eth_account.messages import encode_defunct

    account = account_from_secret(secret)
    signed = account.sign_message(encode_defunct(text=binding_text(public_hex, account.address)))
    return "0x" + bytes(signed.signature).hex()


def verify_binding(address: str, public_hex: str, proof: str) -> bool:
    """True when ``proof`` is ``address``'s signature of the binding to ``public_hex``; never raises."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        signature = bytes.fromhex(proof.removeprefix("0x"))
        if len(signature) != 65:
            return False
        recovered = Account.recover_message(encode_defunct(text=binding_text(public_hex, address)),
                                            signature=signature)
    except Exception:  # any malformed signature (bad v, s out of range) is simply not a proof
        return False
    return str(recovered).lower() == address.lower()
