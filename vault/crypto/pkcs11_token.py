"""The Tresor KEK versions on a PKCS#11 token: found, generated, used to wrap and unwrap
DEKs, destroyed. Why the keys can be trusted and how a DEK is bound is told in
`vault.crypto.pkcs11_provider`, which puts these versions beside the keyring file's."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams

from vault.crypto import _aead
from vault.crypto.errors import DecryptionError, KeyringError
from vault.crypto.pkcs11_session import SESSION_LOST, acquire, release

LABEL_PREFIX = "tresor-kek-v"
_LABEL = re.compile(r"^tresor-kek-v([1-9][0-9]{0,8})$")
_FORMAT = b"\x02"
_NONCE_LEN = 12
_TAG_BITS = 128
_BLOB_LEN = 1 + _NONCE_LEN + _aead.KEY_LEN + _TAG_BITS // 8
#: Attributes a KEK must carry to be used: generated on the token, never readable.
_REQUIRED = {
    Attribute.SENSITIVE: True,
    Attribute.ALWAYS_SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.NEVER_EXTRACTABLE: True,
    Attribute.LOCAL: True,
}


class NoTokenKek(KeyringError):
    """The token holds no Tresor KEK yet (before `tresor keys migrate-to-pkcs11`)."""


def _wrap_aad(subject_id: str, version: int) -> bytes:
    return f"tresor.dek.pkcs11.v1|{subject_id}|{version}".encode()


class Pkcs11Token:
    """The Tresor KEK versions on one token: find, generate, wrap, unwrap, destroy."""

    def __init__(self, module: Path | str, token_label: str, pin: str) -> None:
        if not token_label:
            raise KeyringError("TRESOR_KEK_PROVIDER=pkcs11 needs TRESOR_PKCS11_TOKEN (label)")
        self._link = acquire(str(module), token_label, pin)
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
            except SESSION_LOST:
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
                except SESSION_LOST:
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
            release(self._link)
