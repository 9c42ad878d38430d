"""KEKs on a PKCS#11 token (an HSM in production, Debian's SoftHSM2 in tests).

What "the KEK never leaves the token" means here: every KEK version is an AES-256 secret key
generated *on* the token (CKA_LOCAL) with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false, so
the token refuses to reveal its value (CKA_VALUE) or to wrap it out, and neither flag can be
turned back. Tresor hands the token a DEK and gets it back wrapped (C_Encrypt with
CKM_AES_GCM), and hands it the wrapped blob to get the DEK back (C_Decrypt); the process only
ever holds DEKs, exactly as with the local keyring. A key with the right label that does not
carry these properties (say, one imported in plaintext) is refused, so nobody can slip a
known key under the vault's DEKs.

Binding: the GCM associated data is `tresor.dek.pkcs11.v1|<subject>|<version>`, so a wrapped
DEK copied to another subject or presented under another version does not unwrap (the same
binding the local keyring uses, in a separate domain). Blob: 0x02 || nonce (12) || ct+tag.

Versions are one number space shared with the local keyring: token keys are labelled
`tresor-kek-v<N>` and numbered after every local version, so a row's `kek_version` alone
names the key that unwraps it. `Pkcs11KekProvider` is what a server runs on: it wraps under
the newest token version and unwraps under a token version or, until they are retired, a
local version still in the keyring file. That makes a migration from the keyring to the
token safe at every moment: each row is re-wrapped in its own guarded update, so before,
during and after a crash mid-migration every row is readable under the version it names.
Before the first token key exists, new DEKs keep being wrapped under the local active
version, so servers can be switched to `TRESOR_KEK_PROVIDER=pkcs11` before the migration.

The active version is read from the token on every wrap (a find over Tresor's keys), the way
the local keyring re-checks its file: a key another process created (`tresor keys rotate`)
is used at once, without a restart. Unwraps use cached key handles (and rescan once for an
unknown version); unwrapped DEKs are cached above this layer by `DekManager` anyway.

The server secrets (blind-index, API-key, audit-chain and checkpoint-signing keys) stay in
the keyring file (mode 0600). They are HMAC and signing keys used on every request, where a
token round trip per use would cost the hot path; protecting them under the token KEK would
change the keyring file format other code reads, and is left for later. After a migration
and `tresor keys retire` the file holds no KEK at all (`active_kek` 0): a stolen file or
backup no longer decrypts any DEK.

The token's keys are `vault.crypto.pkcs11_token`; the login and the session a process
shares per token (a lost one is reopened once, then `KeyringError`: fail closed; the PIN is
never logged nor put into an error message) are `vault.crypto.pkcs11_session`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vault.crypto.errors import KeyringError
from vault.crypto.keyring import LocalKeyring, ServerSecrets, _unb64, _write_atomically
from vault.crypto.pkcs11_token import NoTokenKek, Pkcs11Token


# -- the keyring file next to a token ------------------------------------------------------
class _KeyringFile(LocalKeyring):
    """The keyring file beside a token: the server secrets, plus the local KEK versions a
    migration has not retired yet. Unlike a plain local keyring it may hold no KEK at all
    (`active_kek` 0): after the migration every KEK lives on the token."""

    def _load(self) -> None:
        stamp = self._stat()
        doc = self._read_doc()
        if doc["keks"] or int(doc["active_kek"]) != 0:
            super()._load()
            return
        try:
            sec = ServerSecrets(
                index_key=_unb64(doc["index_key"]),
                client_key=_unb64(doc["client_key"]),
                audit_key=_unb64(doc["audit_key"]),
                signing_key=_unb64(doc["signing_key"]) if "signing_key" in doc else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"keyring {self._path} is malformed") from exc
        self._keks, self._active, self._secrets, self._stamp = {}, 0, sec, stamp

    def retire_local(self, keep: set[int]) -> list[int]:
        """Remove every local KEK version not in `keep`, the active one included."""
        with self._lock:
            doc = self._read_doc()
            removed = sorted(int(v) for v in doc["keks"] if int(v) not in keep)
            for v in removed:
                del doc["keks"][str(v)]
            if removed:
                doc["active_kek"] = max((int(v) for v in doc["keks"]), default=0)
                _write_atomically(self._path, doc)
                self._load()
        return removed


def keks_moved_to_token(path: Path) -> bool:
    """Whether a keyring file is one whose KEKs all retired after a migration to a token."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return isinstance(doc, dict) and doc.get("keks") == {} and doc.get("active_kek") == 0
    except (OSError, ValueError, AttributeError):
        return False


# -- what a server runs on -----------------------------------------------------------------
class Pkcs11KekProvider:
    """KEK provider on a PKCS#11 token, still unwrapping local versions until they retire."""

    #: An unwrap is a call into the token's module (a round trip to an HSM in production)
    #: that holds the calling thread: async callers run it off the event loop
    #: (`DekManager.blocking`, `vault.access.reveal`).
    blocking = True

    def __init__(self, token: Pkcs11Token, keyring: _KeyringFile) -> None:
        self._token = token
        self._keyring = keyring
        self._split()  # fail at start if a version is claimed twice

    @classmethod
    def open(
        cls, *, keyring_path: Path, module: Path | str, token_label: str, pin: str
    ) -> Pkcs11KekProvider:
        keyring = _KeyringFile(keyring_path)
        token = Pkcs11Token(module, token_label, pin)
        try:
            return cls(token, keyring)
        except BaseException:
            token.close()
            raise

    def _split(self) -> tuple[list[int], list[int]]:
        local, on_token = self._keyring.versions(), self._token.versions()
        both = set(local) & set(on_token)
        if both:
            raise KeyringError(
                f"KEK version(s) {sorted(both)} exist both in the keyring file and on the "
                "PKCS#11 token; refusing to guess which one wraps the DEKs"
            )
        return local, on_token

    @property
    def secrets(self) -> ServerSecrets:
        return self._keyring.secrets

    @property
    def token_label(self) -> str:
        return self._token.label

    def ensure_signing_key(self) -> bytes:
        return self._keyring.ensure_signing_key()

    def local_versions(self) -> list[int]:
        """KEK versions still in the keyring file (none once a migration is retired)."""
        return self._keyring.versions()

    def token_versions(self) -> list[int]:
        return self._token.versions()

    def location(self, version: int) -> str:
        """Where a version lives: "pkcs11" or "local"."""
        return "local" if version in self._keyring.versions() else "pkcs11"

    # -- KekProvider -------------------------------------------------------------------
    def active_version(self) -> int:
        local, on_token = self._split()
        if on_token:
            return max(on_token)
        if not local:
            raise KeyringError("no KEK: neither the PKCS#11 token nor the keyring file holds one")
        return self._keyring.active_version()

    def versions(self) -> list[int]:
        local, on_token = self._split()
        return sorted(local + on_token)

    def wrap(self, subject_id: str, dek: bytes) -> tuple[int, bytes]:
        try:
            return self._token.wrap(subject_id, dek)
        except NoTokenKek:
            # Before the migration: keep wrapping under the keyring file's active version.
            if not self._keyring.versions():
                raise
        return self._keyring.wrap(subject_id, dek)

    def unwrap(self, subject_id: str, version: int, blob: bytes) -> bytes:
        if version in self._keyring.versions():
            return self._keyring.unwrap(subject_id, version, blob)
        return self._token.unwrap(subject_id, version, blob)

    def rewrap_many(self, items: Sequence[tuple[str, int, bytes]]) -> list[tuple[int, bytes]]:
        """Re-wrap a batch of (subject id, version, blob) under the active version: the
        token's share unwrapped and everything wrapped in one session hold each (a call
        per DEK cost a key search on the token every time); local versions (a migration)
        are unwrapped from the keyring file."""
        local = set(self._keyring.versions())
        deks: dict[int, bytes] = {}
        on_token = [i for i, item in enumerate(items) if item[1] not in local]
        for i, (subject_id, version, blob) in enumerate(items):
            if version in local:
                deks[i] = self._keyring.unwrap(subject_id, version, blob)
        if on_token:
            opened = self._token.unwrap_many([items[i] for i in on_token])
            deks.update(zip(on_token, opened, strict=True))
        pairs = [(item[0], deks[i]) for i, item in enumerate(items)]
        try:
            return self._token.wrap_many(pairs)
        except NoTokenKek:
            # Before the migration: keep wrapping under the keyring file's active version.
            if not local:
                raise
        return [self._keyring.wrap(subject_id, dek) for subject_id, dek in pairs]

    # -- administration (vault.admin.keys) ---------------------------------------------------
    def add_version(self) -> int:
        """A new KEK generated on the token, numbered after every local and token version."""
        local, on_token = self._split()
        return self._token.add_version(at_least=max(local + on_token, default=0) + 1)

    def retire_versions(self, keep: set[int]) -> list[int]:
        """Drop versions not in `keep`: local ones leave the keyring file (even the local
        active one, once the token holds a KEK), token ones are destroyed on the token
        (never the newest)."""
        local, on_token = self._split()
        removed: list[int] = []
        if on_token:
            removed += self._keyring.retire_local(keep)
        else:
            removed += self._keyring.retire_versions(keep)
        removed += self._token.destroy_versions(set(on_token) - keep)
        return sorted(removed)

    def close(self) -> None:
        self._token.close()
