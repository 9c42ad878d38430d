"""Per-field sealing under a subject's data-encryption key.

The associated data binds each ciphertext to (subject, field, key version): a ciphertext
copied into another subject's row, into another field, or presented under another key
version fails to open with the same opaque error as a tampered one.

Fields that are written more than once (the contact fields) also bind a revision: the
subject's write counter (`subjects.contact_revision`, migration 0013), raised by every
write. Someone with write access to the database who puts back an older ciphertext of a
field puts back one sealed under an older revision, and it no longer opens. Revision 0 is
the format without a revision (`tresor.field.v1`): contact fields written before migration
0013, and values written once under a name that already binds their row (consent evidence,
request payloads, references), where there is nothing older to put back.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import _aead


def _field_aad(subject_id: str, field: str, dek_version: int, revision: int) -> bytes:
    if revision == 0:
        return f"tresor.field.v1|{subject_id}|{field}|{dek_version}".encode()
    if revision < 0:
        raise ValueError("a field revision is never negative")
    return f"tresor.field.v2|{subject_id}|{field}|{dek_version}|{revision}".encode()


def seal_field(
    dek: AESGCM, subject_id: str, field: str, dek_version: int, value: str, *, revision: int = 0
) -> bytes:
    """Encrypt one field value of one subject (at `revision`, see the module docstring)."""
    aad = _field_aad(subject_id, field, dek_version, revision)
    return _aead.seal(dek, value.encode("utf-8"), aad)


def open_field(
    dek: AESGCM, subject_id: str, field: str, dek_version: int, blob: bytes, *, revision: int = 0
) -> str:
    """Decrypt one field value; raises `DecryptionError` on any mismatch, a revision other
    than the one it was sealed at included."""
    aad = _field_aad(subject_id, field, dek_version, revision)
    return _aead.open_(dek, blob, aad).decode("utf-8")


def seal_message(key: bytes, message_id: str, message: bytes) -> bytes:
    """Seal a queued mail (`vault.mail_outbox`) under the outbox key, bound to its row id:
    a sealed message copied into another row does not open."""
    return _aead.seal(_aead.cipher(key), message, f"tresor.mail.v1|{message_id}".encode())


def open_message(key: bytes, message_id: str, blob: bytes) -> bytes:
    """Open a queued mail; raises `DecryptionError` on any mismatch."""
    return _aead.open_(_aead.cipher(key), blob, f"tresor.mail.v1|{message_id}".encode())
