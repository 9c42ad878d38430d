"""Checkpoint signatures: Ed25519 through `Signer` and `VerifyKey`, PEM for auditors."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from vault.crypto import Signer, VerifyKey

RAW = bytes(range(32))


def test_rfc8032_test_1_signature():
    """RFC 8032 section 7.1 TEST 1: the empty message signed with its secret key gives the
    published signature, and the public key verifies it."""
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    signature = Signer(secret).sign(b"")
    assert signature.hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert Signer(secret).verify_key.verify(signature, b"")


def test_a_signature_verifies_only_for_its_message_and_key():
    """A changed message, a changed signature, a truncated one or another key fails."""
    signer = Signer(RAW)
    signature = signer.sign(b"checkpoint")
    public = signer.verify_key
    assert public.verify(signature, b"checkpoint")
    assert not public.verify(signature, b"checkpoinT")
    assert not public.verify(bytes([signature[0] ^ 1]) + signature[1:], b"checkpoint")
    assert not public.verify(signature[:40], b"checkpoint")
    assert not Signer(bytes(range(1, 33))).verify_key.verify(signature, b"checkpoint")


def test_the_public_key_round_trips_through_pem_and_names_itself():
    """The PEM an auditor is given loads back into a key that verifies, and `key_id` is the
    first 16 hex characters of SHA-256 of the raw public key."""
    signer = Signer(RAW)
    loaded = VerifyKey.from_pem(signer.verify_key.pem().encode())
    assert loaded.verify(signer.sign(b"m"), b"m")
    assert loaded.key_id == signer.verify_key.key_id and len(loaded.key_id) == 16
    pem = signer.verify_key.pem().encode()
    raw_public = _raw_from_pem(pem)
    assert loaded.key_id == hashlib.sha256(raw_public).hexdigest()[:16]


def _raw_from_pem(pem: bytes) -> bytes:
    return load_pem_public_key(pem).public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_anything_but_an_ed25519_public_key_is_refused():
    """Garbage and a public key of another algorithm are a `ValueError`, not a key; a
    private key of the wrong length is refused as well."""
    with pytest.raises(ValueError):
        VerifyKey.from_pem(b"not a key")
    ec_pem = (
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="Ed25519"):
        VerifyKey.from_pem(ec_pem)
    with pytest.raises(ValueError):
        Signer(RAW[:31])
    assert RAW.hex() not in repr(Signer(RAW))
