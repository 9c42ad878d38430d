"""Per-field sealing under a subject's data-encryption key.

The associated data binds each ciphertext to (subject, field, key version): a ciphertext
copied into another subject's row, into another field, or presented under another key
version fails to open with the same opaque error as a tampered one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import _aead


def _field_aad(subject_id: str, field: str, dek_version: int) -> bytes:
    return f"tresor.field.v1|{subject_id}|{field}|{dek_version}".encode()


def seal_field(dek: AESGCM, subject_id: str, field: str, dek_version: int, value: str) -> bytes:
    """Encrypt one field value of one subject."""
    return _aead.seal(dek, value.encode("utf-8"), _field_aad(subject_id, field, dek_version))


def open_field(dek: AESGCM, subject_id: str, field: str, dek_version: int, blob: bytes) -> str:
    """Decrypt one field value; raises `DecryptionError` on any mismatch."""
    return _aead.open_(dek, blob, _field_aad(subject_id, field, dek_version)).decode("utf-8")
