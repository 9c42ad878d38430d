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

Sessions: one logged-in read-write session per (module, token, PIN) in a process, shared by
every provider on it and used under a lock (a PKCS#11 session must not run two operations
at once; token calls take microseconds on SoftHSM2). A lost session (token removed, HSM
restarted, logged out) is reopened once; if that fails the call raises `KeyringError`, which
the vault turns into "unavailable" (fail closed). The PIN is never logged nor put into an
error message.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams

from vault.crypto import _aead
from vault.crypto.errors import DecryptionError, KeyringError
from vault.crypto.keyring import LocalKeyring, ServerSecrets, _unb64, _write_atomically

LABEL_PREFIX = "tresor-kek-v"
_LABEL = re.compile(r"^tresor-kek-v([1-9][0-9]{0,8})$")
_FORMAT = b"\x02"
_NONCE_LEN = 12
_TAG_BITS = 128
_BLOB_LEN = 1 + _NONCE_LEN + _aead.KEY_LEN + _TAG_BITS // 8
#: Errors after which the session is worth reopening once: the token went away or the
#: session (or its login) is gone. Anything else is an answer of the token, not an outage.
_SESSION_LOST = (
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.UserNotLoggedIn,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
)
#: Attributes a KEK must carry to be used: generated on the token, never readable.
_REQUIRED = {
    Attribute.SENSITIVE: True,
    Attribute.ALWAYS_SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.NEVER_EXTRACTABLE: True,
    Attribute.LOCAL: True,
}

T = TypeVar("T")


class NoTokenKek(KeyringError):
    """The token holds no Tresor KEK yet (before `tresor keys migrate-to-pkcs11`)."""


def _wrap_aad(subject_id: str, version: int) -> bytes:
    return f"tresor.dek.pkcs11.v1|{subject_id}|{version}".encode()


def read_pin(pin: str, pin_file: Path | None) -> str:
    """The user PIN: from the file if one is named (preferred), else the given value.

    A PIN file readable by group or others is refused, like ssh refuses such a key file.
    """
    if pin_file is not None:
        try:
            mode = pin_file.stat().st_mode
            if mode & 0o077:
                raise KeyringError(
                    f"PKCS#11 PIN file {pin_file} is readable by group or others; chmod 600 it"
                )
            text = pin_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise KeyringError(
                f"PKCS#11 PIN file {pin_file} is not readable: {exc.strerror}"
            ) from exc
        if not text:
            raise KeyringError(f"PKCS#11 PIN file {pin_file} is empty")
        return text
    if pin:
        return pin
    raise KeyringError(
        "TRESOR_KEK_PROVIDER=pkcs11 needs the token's user PIN: set TRESOR_PKCS11_PIN_FILE "
        "(preferred) or TRESOR_PKCS11_PIN"
    )


# -- the session shared by every provider of a process on one token -----------------------
class _TokenLink:
    """One logged-in session on a token, used under a lock, reopened once when lost."""

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        self.module, self.token_label, self._pin = module, token_label, pin
        self.lock = threading.RLock()
        self.users = 0
        self._session: Any = None
        #: Bumped whenever the session is replaced: key handles of an older one are stale.
        self.generation = 0

    def _open(self) -> Any:
        try:
            lib = pkcs11.lib(self.module)
        except (p11.PKCS11Error, OSError) as exc:
            raise KeyringError(f"PKCS#11 module {self.module} cannot be loaded") from exc
        try:
            token = lib.get_token(token_label=self.token_label)
        except p11.NoSuchToken as exc:
            raise KeyringError(
                f"no PKCS#11 token labelled {self.token_label!r} in {self.module}"
            ) from exc
        except p11.PKCS11Error as exc:
            raise KeyringError(f"PKCS#11 module {self.module} lists no usable token") from exc
        try:
            return token.open(rw=True, user_pin=self._pin)
        except p11.UserAlreadyLoggedIn:
            # Login is per process: another session of ours is logged in, so this one is too.
            pass
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinLocked) as exc:
            raise KeyringError(
                f"login to PKCS#11 token {self.token_label!r} failed ({type(exc).__name__})"
            ) from exc
        except p11.PKCS11Error as exc:
            raise KeyringError(
                f"PKCS#11 token {self.token_label!r} cannot be opened ({type(exc).__name__})"
            ) from exc
        try:
            return token.open(rw=True)
        except p11.PKCS11Error as exc:
            raise KeyringError(
                f"PKCS#11 token {self.token_label!r} cannot be opened ({type(exc).__name__})"
            ) from exc

    def _drop(self) -> None:
        session, self._session = self._session, None
        self.generation += 1
        if session is not None:
            try:
                session.close()
            except p11.PKCS11Error:
                pass  # the session is gone already; nothing to clean up

    def run(self, op: Callable[[Any], T]) -> T:
        """Run `op(session)` under the lock; a lost session is reopened and `op` retried once."""
        with self.lock:
            for attempt in (1, 2):
                try:
                    if self._session is None:
                        self._session = self._open()
                    return op(self._session)
                except _SESSION_LOST as exc:
                    self._drop()
                    if attempt == 2:
                        raise KeyringError(
                            f"PKCS#11 token {self.token_label!r} is unavailable "
                            f"({type(exc).__name__})"
                        ) from exc
                except p11.PKCS11Error as exc:
                    raise KeyringError(
                        f"PKCS#11 token {self.token_label!r} refused an operation "
                        f"({type(exc).__name__})"
                    ) from exc
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self.lock:
            self._drop()


_LINKS: dict[tuple[str, str, str], _TokenLink] = {}
_LINKS_LOCK = threading.Lock()


def _acquire(module: str, token_label: str, pin: str) -> _TokenLink:
    with _LINKS_LOCK:
        link = _LINKS.get((module, token_label, pin))
        if link is None:
            link = _LINKS[(module, token_label, pin)] = _TokenLink(module, token_label, pin)
        link.users += 1
        return link


def _release(link: _TokenLink) -> None:
    with _LINKS_LOCK:
        link.users -= 1
        if link.users > 0:
            return
        _LINKS.pop((link.module, link.token_label, link._pin), None)
    link.close()


# -- the KEK versions on the token ---------------------------------------------------------
class Pkcs11Token:
    """The Tresor KEK versions on one token: find, generate, wrap, unwrap, destroy."""

    def __init__(self, module: Path | str, token_label: str, pin: str) -> None:
        if not token_label:
            raise KeyringError("TRESOR_KEK_PROVIDER=pkcs11 needs TRESOR_PKCS11_TOKEN (label)")
        self._link = _acquire(str(module), token_label, pin)
        self._keys: dict[int, Any] = {}
        self._generation = -1
        self._closed = False
        try:
            self.versions()  # opens the session now: a bad PIN or token fails at start
        except BaseException:
            self.close()
            raise

    @property
    def label(self) -> str:
        return self._link.token_label

    def _scan(self, session: Any) -> dict[int, Any]:
        """Every Tresor KEK on the token by version; refuses duplicates and weak keys."""
        found: dict[int, Any] = {}
        template = {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
            Attribute.TOKEN: True,
        }
        for key in list(session.get_objects(template)):
            match = _LABEL.match(key[Attribute.LABEL] or "")
            if not match:
                continue
            version = int(match.group(1))
            if version in found:
                raise KeyringError(
                    f"PKCS#11 token {self.label!r} holds two keys labelled {LABEL_PREFIX}"
                    f"{version}; refusing to guess which wraps the DEKs"
                )
            known = self._keys.get(version)
            fresh = self._generation == self._link.generation
            if not fresh or known is None or known.handle != key.handle:
                self._check(version, key)  # once per key and session, not on every scan
            found[version] = key
        return found

    def _check(self, version: int, key: Any) -> None:
        for attribute, wanted in _REQUIRED.items():
            if bool(key[attribute]) is not wanted:
                raise KeyringError(
                    f"KEK {LABEL_PREFIX}{version} on PKCS#11 token {self.label!r} has "
                    f"{attribute.name}={not wanted}; Tresor uses only keys generated on the "
                    "token that can never be extracted"
                )
        if int(key[Attribute.VALUE_LEN]) != _aead.KEY_LEN:
            raise KeyringError(f"KEK {LABEL_PREFIX}{version} is not an AES-256 key")

    def _refresh(self, session: Any) -> dict[int, Any]:
        self._keys = self._scan(session)
        self._generation = self._link.generation
        return self._keys

    def _key(self, session: Any, version: int) -> Any | None:
        if self._generation != self._link.generation:
            self._refresh(session)
        key = self._keys.get(version)
        if key is None:
            key = self._refresh(session).get(version)
        return key

    # -- KEK operations ------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Every Tresor KEK version on the token, read from the token now."""
        return sorted(self._link.run(self._refresh))

    def wrap(self, subject_id: str, dek: bytes) -> tuple[int, bytes]:
        """Wrap under the newest token version, read from the token now."""

        def op(session: Any) -> tuple[int, bytes]:
            keys = self._refresh(session)
            if not keys:
                raise NoTokenKek(f"PKCS#11 token {self.label!r} holds no Tresor KEK yet")
            version = max(keys)
            nonce = os.urandom(_NONCE_LEN)
            params = GCMParams(nonce, _wrap_aad(subject_id, version), _TAG_BITS)
            sealed = keys[version].encrypt(dek, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            return version, _FORMAT + nonce + bytes(sealed)

        return self._link.run(op)

    def unwrap(self, subject_id: str, version: int, blob: bytes) -> bytes:
        """The DEK in `blob`; `DecryptionError` for a wrong subject, version or blob."""
        if len(blob) != _BLOB_LEN or blob[:1] != _FORMAT:
            raise DecryptionError()

        def op(session: Any) -> bytes:
            key = self._key(session, version)
            if key is None:
                raise DecryptionError()
            params = GCMParams(blob[1 : 1 + _NONCE_LEN], _wrap_aad(subject_id, version), _TAG_BITS)
            try:
                return bytes(
                    key.decrypt(
                        blob[1 + _NONCE_LEN :], mechanism=Mechanism.AES_GCM, mechanism_param=params
                    )
                )
            except _SESSION_LOST:
                raise
            except p11.PKCS11Error as exc:
                # SoftHSM2 reports a failed tag as CKR_GENERAL_ERROR, others as
                # CKR_ENCRYPTED_DATA_INVALID: either way the blob does not open.
                raise DecryptionError() from exc

        return self._link.run(op)

    def unwrap_many(self, items: Sequence[tuple[str, int, bytes]]) -> list[bytes]:
        """`unwrap` of each (subject id, version, blob) in one session hold (a re-wrap
        batch): the keys are looked up once, not once per DEK."""
        for _, _, blob in items:
            if len(blob) != _BLOB_LEN or blob[:1] != _FORMAT:
                raise DecryptionError()

        def op(session: Any) -> list[bytes]:
            out = []
            for subject_id, version, blob in items:
                key = self._key(session, version)
                if key is None:
                    raise DecryptionError()
                aad = _wrap_aad(subject_id, version)
                params = GCMParams(blob[1 : 1 + _NONCE_LEN], aad, _TAG_BITS)
                try:
                    dek = key.decrypt(
                        blob[1 + _NONCE_LEN :], mechanism=Mechanism.AES_GCM, mechanism_param=params
                    )
                except _SESSION_LOST:
                    raise
                except p11.PKCS11Error as exc:
                    raise DecryptionError() from exc  # as in `unwrap`
                out.append(bytes(dek))
            return out

        return self._link.run(op)

    def wrap_many(self, items: Sequence[tuple[str, bytes]]) -> list[tuple[int, bytes]]:
        """`wrap` of each (subject id, DEK) under the newest token version, read from the
        token once for the whole batch."""

        def op(session: Any) -> list[tuple[int, bytes]]:
            keys = self._refresh(session)
            if not keys:
                raise NoTokenKek(f"PKCS#11 token {self.label!r} holds no Tresor KEK yet")
            version = max(keys)
            key, out = keys[version], []
            for subject_id, dek in items:
                nonce = os.urandom(_NONCE_LEN)
                params = GCMParams(nonce, _wrap_aad(subject_id, version), _TAG_BITS)
                sealed = key.encrypt(dek, mechanism=Mechanism.AES_GCM, mechanism_param=params)
                out.append((version, _FORMAT + nonce + bytes(sealed)))
            return out

        return self._link.run(op)

    # -- administration ------------------------------------------------------------------
    def add_version(self, at_least: int = 1) -> int:
        """Generate a new KEK on the token, numbered after every existing one; returns it."""

        def op(session: Any) -> int:
            existing = self._refresh(session)
            version = max(max(existing, default=0) + 1, at_least)
            session.generate_key(
                KeyType.AES,
                _aead.KEY_LEN * 8,
                label=f"{LABEL_PREFIX}{version}",
                store=True,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.ENCRYPT: True,
                    Attribute.DECRYPT: True,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                    Attribute.SIGN: False,
                    Attribute.VERIFY: False,
                    Attribute.DERIVE: False,
                    Attribute.MODIFIABLE: False,
                },
            )
            if version not in self._refresh(session):  # also fails on a concurrent twin
                raise KeyringError(f"new KEK {LABEL_PREFIX}{version} not found on the token")
            return version

        return self._link.run(op)

    def destroy_versions(self, versions: set[int]) -> list[int]:
        """Destroy these KEK versions on the token (never the newest); returns destroyed."""

        def op(session: Any) -> list[int]:
            keys = self._refresh(session)
            newest = max(keys, default=None)
            doomed = sorted(v for v in versions if v in keys and v != newest)
            for v in doomed:
                keys[v].destroy()
            self._refresh(session)
            return doomed

        return self._link.run(op)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._keys = {}
            _release(self._link)


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
