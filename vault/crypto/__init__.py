"""The safe surface of Tresor's cryptography: seal and open fields, wrap keys, blind indexes.

Raw primitives live in `_aead` and are private to this package; nothing outside `vault.crypto`
imports them. Every failure to open a ciphertext raises the same opaque `DecryptionError`;
it and a blind-index entry on the wrong row (`IndexMismatch`) are both `IntegrityCheckFailed`.

Infrastructure: imports no other area and nothing of the kernel, so every area may use it.
"""

from vault.crypto.blind_index import BlindIndexer
from vault.crypto.envelope import DekManager, retained_key_id
from vault.crypto.errors import (
    DecryptionError,
    IndexMismatch,
    IntegrityCheckFailed,
    KeyringError,
)
from vault.crypto.fields import open_field, seal_field
from vault.crypto.keyring import KekProvider, LocalKeyring, ServerSecrets

__all__ = [
    "BlindIndexer",
    "DecryptionError",
    "DekManager",
    "IndexMismatch",
    "IntegrityCheckFailed",
    "KekProvider",
    "KeyringError",
    "LocalKeyring",
    "ServerSecrets",
    "open_field",
    "retained_key_id",
    "seal_field",
]
