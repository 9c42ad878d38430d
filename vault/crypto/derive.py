"""Keys for different uses, derived from one server secret by label (HKDF-SHA256).

One key for two MACs lets a value made for one use pass as a value of the other (a session
token's MAC accepted as a code hash, say). So each use of the keyring's server secret
(`client_key`) gets its own key, `HKDF-SHA256(secret, info=label)`, and the labels are the
fixed members of `KeyLabel`: renaming one changes its key and invalidates what was made
under it, so a label is never renamed, only a new one added (`/v2/`).

What is *not* derived here, and why:

- `index_key` (blind indexes) and `audit_key` (the audit chain) are separate random
  secrets of the keyring already, each used for one MAC only. Deriving them from the server
  secret would change every stored index and chain MAC: a re-index of every subject and a
  re-sealed (so no longer tamper-evident) trail, for no gain in separation.
- The checkpoint signing key is an Ed25519 key of its own (`vault.crypto.signing`).

Values stored under the raw server secret before the keys were derived (API-key hashes,
identity-notice link hashes) are checked with `DerivedKeys.legacy_mac()` only until they are
re-hashed or expire; nothing new is ever made with it.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.crypto.mac import MIN_KEY_BYTES, Mac

KEY_BYTES = 32


class KeyLabel(StrEnum):
    """The HKDF `info` of each use of the server secret. Never rename a member's value."""

    API_KEY_HASH = "tresor/v1/api-key-hash"
    SELF_SERVICE_CODE = "tresor/v1/self-service-code"
    SELF_SERVICE_LINK = "tresor/v1/self-service-link"
    SELF_SERVICE_SESSION = "tresor/v1/self-service-session"
    SELF_SERVICE_IP = "tresor/v1/self-service-ip"
    IDENTITY_NOTICE = "tresor/v1/identity-notice-link"
    DPO_SESSION = "tresor/v1/dpo-session"
    DPO_CSRF = "tresor/v1/dpo-csrf"
    PRIVACY_CSRF = "tresor/v1/privacy-csrf"
    CONSOLE_SIGNIN = "tresor/v1/console-signin"
    SSO_FLOW = "tresor/v1/sso-flow"
    LIMIT_ADDRESS = "tresor/v1/limit-address"
    MAIL_OUTBOX = "tresor/v1/mail-outbox"


def derive_key(secret: bytes, label: KeyLabel, length: int = KEY_BYTES) -> bytes:
    """The key for `label`: HKDF-SHA256 of `secret` with the label as `info` and no salt
    (the secret is uniformly random already, RFC 5869 section 3.1)."""
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"the server secret must be at least {MIN_KEY_BYTES} bytes")
    if not isinstance(label, KeyLabel):
        raise TypeError("keys are derived only for the labels of KeyLabel")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.value.encode())
    return hkdf.derive(secret)


class DerivedKeys:
    """The keys of one server secret, each derived once (HKDF costs microseconds, and
    the API-key hash is on every request's path)."""

    __slots__ = ("_keys", "_secret")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"the server secret must be at least {MIN_KEY_BYTES} bytes")
        self._secret = secret
        self._keys: dict[KeyLabel, bytes] = {}

    def __repr__(self) -> str:
        return "DerivedKeys(<secret>)"

    def key(self, label: KeyLabel) -> bytes:
        """The raw key for `label` (for a library that takes a secret, such as the CSRF
        middleware); a MAC takes `mac(label)`."""
        key = self._keys.get(label)
        if key is None:
            key = self._keys[label] = derive_key(self._secret, label)
        return key

    def mac(self, label: KeyLabel) -> Mac:
        """The MAC for `label`'s use."""
        return Mac(self.key(label))

    def legacy_mac(self) -> Mac:
        """HMAC under the raw server secret, as every use keyed it before the derivation:
        only to recognise values stored then (see the module docstring), never to make one."""
        return Mac(self._secret)
