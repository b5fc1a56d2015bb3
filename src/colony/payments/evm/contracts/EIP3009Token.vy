# pragma version 0.4.3
# pragma evm-version cancun
# pragma optimize gas
# @license Apache-2.0
"""
@title EIP3009Token
@license Apache-2.0 (part of Colony)
@notice An ERC-20 with EIP-3009 transfers by signed authorisation, for local chains.
    x402's `exact` scheme on EVM settles by calling `transferWithAuthorization` on the
    token, so a local chain needs a token that has it. This one follows USDC's FiatToken
    v2.2 where the SDK depends on it: the EIP-712 domain (name, version, chainId, this
    contract), both overloads of `transferWithAuthorization` (v, r, s and `bytes
    signature`), EIP-1271 for contract signers, and FiatToken's revert strings, which the
    SDK's facilitator parses to name the failure.
    Signatures must be low-s (EIP-2) and must not recover to the zero address; an
    authorisation is valid strictly after `validAfter` and strictly before `validBefore`.
"""

from ethereum.ercs import IERC20

implements: IERC20


interface IERC1271:
    def isValidSignature(_hash: bytes32, _signature: Bytes[MAX_SIGNATURE_BYTES]) -> bytes4: view


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256


event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)


event AuthorizationCanceled:
    authorizer: indexed(address)
    nonce: indexed(bytes32)


# Contract signers (EIP-1271) may need more than 65 bytes; this bounds what the token reads.
MAX_SIGNATURE_BYTES: constant(uint256) = 1024
MAX_SIGNATURE_WORDS: constant(uint256) = MAX_SIGNATURE_BYTES // 32

EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TRANSFER_WITH_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)
RECEIVE_WITH_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)
CANCEL_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "CancelAuthorization(address authorizer,bytes32 nonce)"
)

# The `bytes signature` overload is dispatched by hand in `__default__`: Vyper has no
# overloading, and the SDK calls this form for signatures that are not 65 bytes long.
TRANSFER_WITH_AUTHORIZATION_BYTES_SELECTOR: constant(bytes4) = method_id(
    "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)",
    output_type=bytes4,
)

# secp256k1n / 2: a larger s is the malleable twin of a valid signature (EIP-2).
SECP256K1N_HALF: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
EIP1271_MAGIC_VALUE: constant(bytes4) = 0x1626ba7e

name: public(String[50])
symbol: public(String[20])
version: public(String[20])
decimals: public(constant(uint8)) = 6
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
owner: public(address)
authorizationState: public(HashMap[address, HashMap[bytes32, bool]])

_NAME_HASH: immutable(bytes32)
_VERSION_HASH: immutable(bytes32)
_CACHED_CHAIN_ID: immutable(uint256)
_CACHED_DOMAIN_SEPARATOR: immutable(bytes32)


@deploy
def __init__(name_: String[50], symbol_: String[20], version_: String[20]):
    self.name = name_
    self.symbol = symbol_
    self.version = version_
    self.owner = msg.sender
    _NAME_HASH = keccak256(name_)
    _VERSION_HASH = keccak256(version_)
    _CACHED_CHAIN_ID = chain.id
    _CACHED_DOMAIN_SEPARATOR = self._build_domain_separator()


# ERC-20


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[owner][msg.sender]
    assert allowed >= amount, "ERC20: insufficient allowance"
    if allowed != max_value(uint256):
        self.allowance[owner][msg.sender] = allowed - amount
    self._transfer(owner, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    assert msg.sender == self.owner, "EIP3009Token: caller is not the owner"
    assert receiver != empty(address), "ERC20: mint to the zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


# EIP-712


@view
@external
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain_separator()


@view
@external
def eip712Domain() -> (
    bytes1, String[50], String[20], uint256, address, bytes32, DynArray[uint256, 1]
):
    # EIP-5267: 0x0f marks name, version, chainId and verifyingContract as present.
    return (0x0f, self.name, self.version, chain.id, self, empty(bytes32), [])


# EIP-3009


@external
def transferWithAuthorization(
    _from: address,
    _to: address,
    _value: uint256,
    _validAfter: uint256,
    _validBefore: uint256,
    _nonce: bytes32,
    _v: uint8,
    _r: bytes32,
    _s: bytes32,
):
    self._transfer_with_authorization(
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
        _from,
        _to,
        _value,
        _validAfter,
        _validBefore,
        _nonce,
        concat(_r, _s, convert(_v, bytes1)),
    )


@external
def receiveWithAuthorization(
    _from: address,
    _to: address,
    _value: uint256,
    _validAfter: uint256,
    _validBefore: uint256,
    _nonce: bytes32,
    _v: uint8,
    _r: bytes32,
    _s: bytes32,
):
    # Only the payee may submit it, so a watcher of the mempool cannot front-run the
    # payee's own call that depends on the transfer.
    assert _to == msg.sender, "FiatTokenV2: caller must be the payee"
    self._transfer_with_authorization(
        RECEIVE_WITH_AUTHORIZATION_TYPEHASH,
        _from,
        _to,
        _value,
        _validAfter,
        _validBefore,
        _nonce,
        concat(_r, _s, convert(_v, bytes1)),
    )


@external
def cancelAuthorization(_authorizer: address, _nonce: bytes32, _v: uint8, _r: bytes32, _s: bytes32):
    assert not self.authorizationState[_authorizer][_nonce], "FiatTokenV2: authorization is used or canceled"
    struct_hash: bytes32 = keccak256(abi_encode(CANCEL_AUTHORIZATION_TYPEHASH, _authorizer, _nonce))
    self._require_valid_signature(_authorizer, self._digest(struct_hash), concat(_r, _s, convert(_v, bytes1)))
    self.authorizationState[_authorizer][_nonce] = True
    log AuthorizationCanceled(authorizer=_authorizer, nonce=_nonce)


@external
def __default__():
    """
    @notice transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)
    """
    assert len(msg.data) >= 4 + 8 * 32, "EIP3009Token: unknown function"
    assert convert(slice(msg.data, 0, 4), bytes4) == TRANSFER_WITH_AUTHORIZATION_BYTES_SELECTOR, "EIP3009Token: unknown function"
    head: Bytes[192] = slice(msg.data, 4, 192)
    _from: address = empty(address)
    _to: address = empty(address)
    _value: uint256 = 0
    _validAfter: uint256 = 0
    _validBefore: uint256 = 0
    _nonce: bytes32 = empty(bytes32)
    _from, _to, _value, _validAfter, _validBefore, _nonce = abi_decode(
        head, (address, address, uint256, uint256, uint256, bytes32)
    )
    self._transfer_with_authorization(
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
        _from,
        _to,
        _value,
        _validAfter,
        _validBefore,
        _nonce,
        self._calldata_signature(),
    )


# internals


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "ERC20: transfer to the zero address"
    assert self.balanceOf[sender] >= amount, "ERC20: transfer amount exceeds balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@internal
def _transfer_with_authorization(
    typehash: bytes32,
    _from: address,
    _to: address,
    _value: uint256,
    _validAfter: uint256,
    _validBefore: uint256,
    _nonce: bytes32,
    signature: Bytes[MAX_SIGNATURE_BYTES],
):
    assert block.timestamp > _validAfter, "FiatTokenV2: authorization is not yet valid"
    assert block.timestamp < _validBefore, "FiatTokenV2: authorization is expired"
    assert not self.authorizationState[_from][_nonce], "FiatTokenV2: authorization is used or canceled"
    struct_hash: bytes32 = keccak256(
        abi_encode(typehash, _from, _to, _value, _validAfter, _validBefore, _nonce)
    )
    self._require_valid_signature(_from, self._digest(struct_hash), signature)
    self.authorizationState[_from][_nonce] = True
    log AuthorizationUsed(authorizer=_from, nonce=_nonce)
    self._transfer(_from, _to, _value)


@internal
def _require_valid_signature(signer: address, digest: bytes32, signature: Bytes[MAX_SIGNATURE_BYTES]):
    # As USDC v2.2's SignatureChecker: an address with code answers for itself (EIP-1271),
    # any other must have signed with its key.
    if signer.is_contract:
        magic: bytes4 = staticcall IERC1271(signer).isValidSignature(digest, signature)
        assert magic == EIP1271_MAGIC_VALUE, "FiatTokenV2: invalid signature"
        return
    assert len(signature) == 65, "FiatTokenV2: invalid signature"
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    assert s <= SECP256K1N_HALF, "FiatTokenV2: invalid signature"
    assert v == 27 or v == 28, "FiatTokenV2: invalid signature"
    recovered: address = ecrecover(digest, v, r, s)
    assert recovered != empty(address), "FiatTokenV2: invalid signature"
    assert recovered == signer, "FiatTokenV2: invalid signature"


@view
@internal
def _calldata_signature() -> Bytes[MAX_SIGNATURE_BYTES]:
    # Vyper slices calldata only by constant lengths, so the `bytes` argument is read a
    # word at a time into a bytes32 array whose ABI encoding differs from that of the
    # `bytes` value only in its length word, which is then patched in.
    offset: uint256 = convert(slice(msg.data, 4 + 6 * 32, 32), uint256)
    start: uint256 = 4 + offset
    length: uint256 = convert(slice(msg.data, start, 32), uint256)
    assert length <= MAX_SIGNATURE_BYTES, "FiatTokenV2: invalid signature"
    words: DynArray[bytes32, MAX_SIGNATURE_WORDS] = []
    for i: uint256 in range((length + 31) // 32, bound=MAX_SIGNATURE_WORDS):
        words.append(convert(slice(msg.data, start + 32 + 32 * i, 32), bytes32))
    encoded: Bytes[64 + MAX_SIGNATURE_BYTES] = abi_encode(words)
    patched: Bytes[128 + MAX_SIGNATURE_BYTES] = concat(
        convert(32, bytes32), convert(length, bytes32), slice(encoded, 64, len(encoded) - 64)
    )
    return abi_decode(patched, Bytes[MAX_SIGNATURE_BYTES])


@view
@internal
def _digest(struct_hash: bytes32) -> bytes32:
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@view
@internal
def _domain_separator() -> bytes32:
    # Recomputed after a fork changes the chain id, so old signatures cannot replay there.
    if chain.id == _CACHED_CHAIN_ID:
        return _CACHED_DOMAIN_SEPARATOR
    return self._build_domain_separator()


@view
@internal
def _build_domain_separator() -> bytes32:
    return keccak256(abi_encode(EIP712_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, chain.id, self))
