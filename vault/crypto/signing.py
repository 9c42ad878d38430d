"""Ed25519 signatures of audit checkpoints, without the hazmat layer outside vault.crypto.

The vault signs with the keyring's raw 32-byte private key (`Signer`); an auditor outside it
checks with the public key alone, as PEM (`VerifyKey`). A bad or malformed signature is a
plain `False`: a verifier reports which checkpoint failed, never why.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)


class VerifyKey:
    """An Ed25519 public key that checks checkpoint signatures."""

    __slots__ = ("_public",)

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public

    @classmethod
    def from_pem(cls, data: bytes) -> VerifyKey:
        """The key in a PEM file; `ValueError` for anything but an Ed25519 public key."""
        try:
            loaded = load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise ValueError("not a PEM public key") from exc
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return cls(loaded)

    def pem(self) -> str:
        """SubjectPublicKeyInfo PEM, what auditors are given."""
        return self._public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def key_id(self) -> str:
        """The first 16 hex characters of SHA-256 of the raw key: names the key a
        checkpoint was signed with, so a rotation is visible in the file."""
        raw = self._public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether `signature` is this key's signature of `message`."""
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """The Ed25519 private key that signs checkpoints."""

    __slots__ = ("_private",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("an Ed25519 private key has 32 bytes")
        self._private = Ed25519PrivateKey.from_private_bytes(raw)

    def __repr__(self) -> str:
        return "Signer(<key>)"

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._private.public_key())
