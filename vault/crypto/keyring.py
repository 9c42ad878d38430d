"""Key-encryption keys (KEKs) with versions, and the server's other secrets.

`KekProvider` is the contract every KEK backend fulfils (the local keyring file here; an HSM
through PKCS#11 later). A provider wraps and unwraps data-encryption keys; the KEK itself
never leaves it. The local keyring is a JSON file with mode 0600, written atomically, and
re-read when another process (`tresor keys rotate`) changed it, so a running server picks up
a new version without a restart.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vault.crypto import _aead
from vault.crypto.errors import DecryptionError, KeyringError
from vault.errors import InvariantViolation

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KekProvider(Protocol):
    def active_version(self) -> int:
        """The KEK version new wraps use."""
        ...

    def versions(self) -> list[int]:
        """Every KEK version the provider still holds."""
        ...

    def wrap(self, subject_id: str, dek: bytes) -> tuple[int, bytes]:
        """Wrap a DEK under the active KEK, bound to the subject; returns (version, blob)."""
        ...

    def unwrap(self, subject_id: str, version: int, blob: bytes) -> bytes:
        """Unwrap a DEK wrapped under `version`; raises `DecryptionError` on any mismatch."""
        ...


@dataclass(frozen=True, slots=True)
class ServerSecrets:
    """Secrets that are not KEKs: blind-index key, API-key HMAC key, audit chain key."""

    index_key: bytes
    client_key: bytes
    audit_key: bytes
    #: Ed25519 private key (raw 32 bytes) that signs audit checkpoints; None in keyrings
    #: written before checkpoints existed until `ensure_signing_key` adds one.
    signing_key: bytes | None = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _wrap_aad(subject_id: str, version: int) -> bytes:
    return f"tresor.dek.v1|{subject_id}|{version}".encode()


#: How long a successful check of the keyring file covers further unwraps (seconds).
UNWRAP_RECHECK = 0.005


class LocalKeyring:
    """KEKs and server secrets in one JSON file (default provider, created by `tresor init`)."""

    FORMAT = 1

    #: Monotonic time until which unwraps skip the file check (see `unwrap`).
    _fresh_until: float = 0.0

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keks: dict[int, AESGCM] = {}
        self._active = 0
        self._secrets: ServerSecrets | None = None
        self._load()

    # -- creation ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path) -> LocalKeyring:
        """Create a new keyring file; refuses to overwrite an existing one."""
        if path.exists():
            raise KeyringError(f"keyring {path} already exists; refusing to overwrite keys")
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": cls.FORMAT,
            "active_kek": 1,
            "keks": {"1": _b64(_aead.new_key())},
            "index_key": _b64(secrets.token_bytes(32)),
            "client_key": _b64(secrets.token_bytes(32)),
            "audit_key": _b64(secrets.token_bytes(32)),
            "signing_key": _b64(secrets.token_bytes(32)),
        }
        _write_atomically(path, doc, exclusive=True)
        return cls(path)

    # -- reading ----------------------------------------------------------------------
    def _read_doc(self) -> dict[str, Any]:
        try:
            raw = self._path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyringError(f"keyring {self._path} is not readable: {exc.strerror}") from exc
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != self.FORMAT:
                raise ValueError("unknown format")
            int(doc["active_kek"])
            dict(doc["keks"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"keyring {self._path} is malformed") from exc
        return doc

    def _stat(self) -> tuple[int, int, int]:
        """What identifies one version of the file: every write renames a new inode in, so a
        change shows even where the file system's mtime is too coarse to tell writes apart."""
        try:
            st = self._path.stat()
        except OSError as exc:
            raise KeyringError(f"keyring {self._path} is not readable: {exc.strerror}") from exc
        return st.st_mtime_ns, st.st_ino, st.st_size

    def _load(self) -> None:
        stamp = self._stat()
        doc = self._read_doc()
        try:
            keks = {int(v): _aead.cipher(_unb64(k)) for v, k in doc["keks"].items()}
            active = int(doc["active_kek"])
            sec = ServerSecrets(
                index_key=_unb64(doc["index_key"]),
                client_key=_unb64(doc["client_key"]),
                audit_key=_unb64(doc["audit_key"]),
                signing_key=_unb64(doc["signing_key"]) if "signing_key" in doc else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"keyring {self._path} is malformed") from exc
        if active not in keks:
            raise KeyringError(f"keyring {self._path} names active version {active} it lacks")
        self._keks, self._active, self._secrets, self._stamp = keks, active, sec, stamp

    def refresh(self) -> None:
        """Re-read the file if another process changed it since the last read."""
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._load()

    @property
    def secrets(self) -> ServerSecrets:
        if self._secrets is None:
            raise InvariantViolation("self._secrets is unset")
        return self._secrets

    # -- KekProvider -------------------------------------------------------------------
    def active_version(self) -> int:
        self.refresh()
        return self._active

    def versions(self) -> list[int]:
        self.refresh()
        return sorted(self._keks)

    def wrap(self, subject_id: str, dek: bytes) -> tuple[int, bytes]:
        self.refresh()
        version = self._active
        kek = self._keks[version]
        return version, _aead.seal(kek, dek, _wrap_aad(subject_id, version))

    def unwrap(self, subject_id: str, version: int, blob: bytes) -> bytes:
        # A stat per unwrap (a DEK-cache miss), at most one per `UNWRAP_RECHECK` seconds:
        # while the file is unreadable no further DEK is opened (KeyringError, a 503
        # upstream), and a rotated file is picked up. Bulk resolution unwraps hundreds of
        # keys per chunk, where a stat each was a measurable share of its CPU
        # (docs/performance.md).
        now = time.monotonic()
        if now >= self._fresh_until:
            self.refresh()
            self._fresh_until = now + UNWRAP_RECHECK
        kek = self._keks.get(version)
        if kek is None:
            raise DecryptionError()
        return _aead.open_(kek, blob, _wrap_aad(subject_id, version))

    def rewrap_many(self, items: Sequence[tuple[str, int, bytes]]) -> list[tuple[int, bytes]]:
        """Unwrap each (subject id, version, blob) and wrap it again under the active
        version: a re-wrap batch. The file is checked once per batch, not once per DEK (a
        `stat` each was a quarter of a rotation's CPU); `DecryptionError` as `unwrap`."""
        self.refresh()
        keks, version = self._keks, self._active
        plain = []
        for subject_id, old, blob in items:
            kek = keks.get(old)
            if kek is None:
                raise DecryptionError()
            aad = _wrap_aad(subject_id, version)
            plain.append((_aead.open_(kek, bytes(blob), _wrap_aad(subject_id, old)), aad))
        # One draw of random nonces for the batch (a system call per DEK was measurable).
        return [(version, blob) for blob in _aead.seal_many(keks[version], plain)]

    # -- administration ----------------------------------------------------------------
    def add_version(self) -> int:
        """Add a new KEK version and make it active for new wraps; returns the version."""
        with self._lock:
            doc = self._read_doc()
            new_version = max(int(v) for v in doc["keks"]) + 1
            doc["keks"][str(new_version)] = _b64(_aead.new_key())
            doc["active_kek"] = new_version
            _write_atomically(self._path, doc)
            self._load()
        return new_version

    def ensure_signing_key(self) -> bytes:
        """The checkpoint signing key, adding one to an older keyring file if it lacks it."""
        if self.secrets.signing_key is None:
            with self._lock:
                doc = self._read_doc()
                if "signing_key" not in doc:
                    doc["signing_key"] = _b64(secrets.token_bytes(32))
                    _write_atomically(self._path, doc)
                self._load()
        if self.secrets.signing_key is None:
            raise InvariantViolation("self.secrets.signing_key is unset")
        return self.secrets.signing_key

    def retire_versions(self, keep: set[int]) -> list[int]:
        """Remove every KEK version not in `keep` (never the active one); returns removed."""
        with self._lock:
            doc = self._read_doc()
            active = int(doc["active_kek"])
            removed = sorted(int(v) for v in doc["keks"] if int(v) not in keep | {active})
            for v in removed:
                del doc["keks"][str(v)]
            if removed:
                _write_atomically(self._path, doc)
                self._load()
        return removed


def _write_atomically(path: Path, doc: dict[str, Any], *, exclusive: bool = False) -> None:
    """Write JSON to a 0600 temp file beside `path`, fsync, then rename over it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if a keyring appeared meanwhile
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)
