"""The safe surface of Tresor's cryptography: seal and open fields, wrap keys, blind indexes,
keyed MACs under keys derived by label, checkpoint signatures.

Raw primitives live in `_aead` and are private to this package; nothing outside `vault.crypto`
imports `cryptography` or `hmac` (tests/test_architecture.py checks it): a MAC is a `Mac`
under a key from `DerivedKeys` (one key per use), a signature a `Signer` / `VerifyKey`.
Every failure to open a ciphertext raises the same opaque `DecryptionError`;
it and a blind-index entry on the wrong row (`IndexMismatch`) are both `IntegrityCheckFailed`.

Infrastructure: imports no other area and nothing of the kernel, so every area may use it.
"""

from vault.crypto.blind_index import BlindIndexer
from vault.crypto.derive import DerivedKeys, KeyLabel, derive_key
from vault.crypto.envelope import DekManager, retained_key_id
from vault.crypto.errors import (
    DecryptionError,
    IndexMismatch,
    IntegrityCheckFailed,
    KeyringError,
)
from vault.crypto.fields import open_field, open_message, seal_field, seal_message
from vault.crypto.keyring import KekProvider, LocalKeyring, ServerSecrets
from vault.crypto.mac import Mac, same_digest
from vault.crypto.signing import Signer, VerifyKey

__all__ = [
    "BlindIndexer",
    "DecryptionError",
    "DekManager",
    "DerivedKeys",
    "IndexMismatch",
    "IntegrityCheckFailed",
    "KekProvider",
    "KeyLabel",
    "KeyringError",
    "LocalKeyring",
    "Mac",
    "ServerSecrets",
    "Signer",
    "VerifyKey",
    "derive_key",
    "open_field",
    "open_message",
    "retained_key_id",
    "same_digest",
    "seal_field",
    "seal_message",
]
