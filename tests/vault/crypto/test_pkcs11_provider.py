"""The PKCS#11 KEK provider against a real SoftHSM2 token: token versions numbered after the
local keyring's and both unwrapped, local versions retired, a version claimed twice refused,
and batch rewraps onto the newest token key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.support.softhsm import MODULE, SoftToken
from vault.crypto import DecryptionError, KeyringError, LocalKeyring
from vault.crypto.pkcs11_provider import Pkcs11KekProvider
from vault.crypto.pkcs11_token import Pkcs11Token

DEK = bytes(range(32))


def _keyring(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "keyring.json"
    LocalKeyring.create(path)
    return path


def test_composite_numbers_token_keys_after_local_ones_and_unwraps_both(
    token: SoftToken, tmp_path: Path
) -> None:
    """Before a token key exists wraps stay local; the first token key is numbered after the
    local versions, takes over new wraps, and local blobs keep unwrapping."""
    path = _keyring(tmp_path)
    LocalKeyring(path).add_version()  # local v1, v2
    kek = Pkcs11KekProvider.open(
        keyring_path=path, module=MODULE, token_label=token.label, pin=token.pin
    )
    try:
        assert kek.versions() == [1, 2] and kek.active_version() == 2
        local_version, local_blob = kek.wrap("s", DEK)
        assert local_version == 2

        assert kek.add_version() == 3

        assert kek.active_version() == 3 and kek.versions() == [1, 2, 3]
        assert (kek.location(2), kek.location(3)) == ("local", "pkcs11")
        version, blob = kek.wrap("s", DEK)
        assert version == 3
        assert kek.unwrap("s", 3, blob) == DEK
        assert kek.unwrap("s", 2, local_blob) == DEK
        with pytest.raises(DecryptionError):
            kek.unwrap("s", 3, local_blob)
    finally:
        kek.close()


def test_retiring_every_local_version_leaves_a_keyring_file_without_keks(
    token: SoftToken, tmp_path: Path
) -> None:
    """Once the token holds a KEK, retiring drops even the local active version: the file then
    holds only the server secrets (0600), still opens, and unwraps no old blob."""
    path = _keyring(tmp_path)
    secrets_before = LocalKeyring(path).secrets
    kek = Pkcs11KekProvider.open(
        keyring_path=path, module=MODULE, token_label=token.label, pin=token.pin
    )
    try:
        _, local_blob = kek.wrap("s", DEK)
        assert kek.retire_versions(keep=set()) == []  # no token key yet: v1 must stay
        kek.add_version()
        assert kek.retire_versions(keep=set()) == [1]
        assert kek.versions() == [2] and kek.local_versions() == []
        with pytest.raises(DecryptionError):
            kek.unwrap("s", 1, local_blob)
    finally:
        kek.close()
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["keks"] == {} and doc["active_kek"] == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(KeyringError):
        LocalKeyring(path)  # the local provider alone has nothing to wrap with
    reopened = Pkcs11KekProvider.open(
        keyring_path=path, module=MODULE, token_label=token.label, pin=token.pin
    )
    try:
        assert reopened.secrets == secrets_before
        assert reopened.versions() == [2]
    finally:
        reopened.close()


def test_a_version_both_in_the_file_and_on_the_token_is_refused(
    token: SoftToken, tmp_path: Path
) -> None:
    """If the token and the keyring file both claim version 1, the provider does not open."""
    path = _keyring(tmp_path)
    hsm = Pkcs11Token(MODULE, token.label, token.pin)
    try:
        assert hsm.add_version() == 1
        with pytest.raises(KeyringError, match="both in the keyring file and on the"):
            Pkcs11KekProvider.open(
                keyring_path=path, module=MODULE, token_label=token.label, pin=token.pin
            )
    finally:
        hsm.close()


def test_a_batch_rewrap_moves_local_and_token_keys_to_the_newest_token_key(
    token: SoftToken, tmp_path: Path
) -> None:
    """`rewrap_many` re-wraps a batch mixing local and token versions, in order, under the
    newest token key, each DEK still bound to its subject; a tampered blob fails the batch."""
    path = _keyring(tmp_path)
    kek = Pkcs11KekProvider.open(
        keyring_path=path, module=MODULE, token_label=token.label, pin=token.pin
    )
    try:
        local = [("a", *kek.wrap("a", DEK)), ("b", *kek.wrap("b", DEK[::-1]))]
        assert kek.add_version() == 2
        on_token = [("c", *kek.wrap("c", DEK))]
        assert kek.add_version() == 3
        fresh = kek.rewrap_many([local[0], on_token[0], local[1]])
        assert [v for v, _ in fresh] == [3, 3, 3]
        assert kek.unwrap("a", 3, fresh[0][1]) == DEK
        assert kek.unwrap("c", 3, fresh[1][1]) == DEK
        assert kek.unwrap("b", 3, fresh[2][1]) == DEK[::-1]
        with pytest.raises(DecryptionError):
            kek.unwrap("a", 3, fresh[1][1])
        bad = on_token[0][2][:-1] + bytes([on_token[0][2][-1] ^ 1])
        with pytest.raises(DecryptionError):
            kek.rewrap_many([local[0], ("c", 2, bad)])
    finally:
        kek.close()
