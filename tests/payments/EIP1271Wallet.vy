# pragma version 0.4.3
# @license Apache-2.0
# A test-only EIP-1271 wallet. Its "signature" of a digest is the digest three times followed
# by 01020304: 100 bytes, so the x402 facilitator and the token must use the `bytes signature`
# form of transferWithAuthorization, and the token must read several calldata words.
@view
@external
def isValidSignature(_hash: bytes32, _signature: Bytes[1024]) -> bytes4:
    if keccak256(_signature) == keccak256(concat(_hash, _hash, _hash, x"01020304")):
        return 0x1626ba7e
    return 0xffffffff
