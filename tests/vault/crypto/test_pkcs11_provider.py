"""The PKCS#11 KEK provider against a real SoftHSM2 token: wrap/unwrap, binding, the key's
non-extractability, misuse, sessions, and coexistence with the local keyring's versions."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from tests.support.softhsm import MODULE, SoftToken, activate, init_token
from vault.crypto import DecryptionError, KeyringError, LocalKeyring
from vault.crypto.pkcs11_provider import (
    LABEL_PREFIX,
    Pkcs11KekProvider,
    Pkcs11Token,
    read_pin,
)

DEK = bytes(range(32))


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftToken:
    return activate(init_token(tmp_path / "hsm"), monkeypatch)


@pytest.fixture
def hsm(token: SoftToken):
    t = Pkcs11Token(MODULE, token.label, token.pin)
    yield t
    t.close()


def _session(token: SoftToken):
    """A session of the test itself (not the provider's) on the token."""
    import pkcs11

    return (
        pkcs11.lib(str(MODULE)).get_token(token_label=token.label).open(rw=True, user_pin=token.pin)
    )


def test_wrap_unwrap_roundtrip(hsm: Pkcs11Token) -> None:
    """A DEK wrapped on the token unwraps to the same bytes; the blob never contains the DEK."""
    assert hsm.versions() == []
    assert hsm.add_version() == 1
    version, blob = hsm.wrap("subject-a", DEK)
    assert version == 1
    assert DEK not in blob
    assert hsm.unwrap("subject-a", 1, blob) == DEK
    again = hsm.wrap("subject-a", DEK)[1]
    assert again != blob  # a fresh nonce per wrap
    assert hsm.unwrap("subject-a", 1, again) == DEK


def test_kek_on_the_token_is_sensitive_and_never_extractable(token: SoftToken) -> None:
    """The generated KEK refuses to reveal CKA_VALUE, to become extractable or to be wrapped
    out by another key; it was generated on the token and was never extractable."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    hsm = Pkcs11Token(MODULE, token.label, token.pin)
    hsm.add_version()
    hsm.close()  # logs the provider out, so the test logs in with its own session
    session = _session(token)
    try:
        kek = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=f"{LABEL_PREFIX}1")
        assert kek[Attribute.SENSITIVE] and kek[Attribute.ALWAYS_SENSITIVE]
        assert not kek[Attribute.EXTRACTABLE] and kek[Attribute.NEVER_EXTRACTABLE]
        assert kek[Attribute.LOCAL] and kek[Attribute.PRIVATE] and kek[Attribute.TOKEN]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            kek[Attribute.VALUE]
        with pytest.raises(pkcs11.PKCS11Error):
            kek[Attribute.EXTRACTABLE] = True
        wrapper = session.generate_key(
            KeyType.AES, 256, store=False, template={Attribute.WRAP: True}
        )
        with pytest.raises(pkcs11.PKCS11Error):
            wrapper.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP_PAD)
    finally:
        session.close()


def test_wrong_subject_version_or_tampered_blob_does_not_unwrap(hsm: Pkcs11Token) -> None:
    """A DEK wrapped for subject A fails for subject B, under another or unknown version, and
    with any byte flipped; every failure is the same opaque DecryptionError."""
    hsm.add_version()
    version, blob = hsm.wrap("subject-a", DEK)
    assert hsm.add_version() == 2
    with pytest.raises(DecryptionError):
        hsm.unwrap("subject-b", version, blob)
    with pytest.raises(DecryptionError):
        hsm.unwrap("subject-a", 2, blob)
    with pytest.raises(DecryptionError):
        hsm.unwrap("subject-a", 7, blob)
    for i in (0, 5, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            hsm.unwrap("subject-a", version, bytes(tampered))
    with pytest.raises(DecryptionError):
        hsm.unwrap("subject-a", version, blob[:-1])
    assert hsm.unwrap("subject-a", version, blob) == DEK


def test_new_wraps_use_the_newest_token_key_and_old_ones_still_unwrap(hsm: Pkcs11Token) -> None:
    """After another key is generated, wraps use it at once and blobs of the older one open."""
    hsm.add_version()
    _, old = hsm.wrap("s", DEK)
    assert hsm.add_version() == 2
    assert hsm.wrap("s", DEK)[0] == 2
    assert hsm.unwrap("s", 1, old) == DEK
    assert hsm.destroy_versions({1, 2}) == [1]  # never the newest
    assert hsm.versions() == [2]
    with pytest.raises(DecryptionError):
        hsm.unwrap("s", 1, old)


def test_an_imported_or_extractable_key_under_a_tresor_label_is_refused(token: SoftToken) -> None:
    """A key named like a Tresor KEK but imported in plaintext (known to someone) stops the
    provider from opening instead of being used."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    session = _session(token)
    try:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.LABEL: f"{LABEL_PREFIX}1",
                Attribute.VALUE: bytes(32),
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
            }
        )
    finally:
        session.close()
    with pytest.raises(KeyringError, match="generated on the token"):
        Pkcs11Token(MODULE, token.label, token.pin)


def test_a_wrong_pin_or_unknown_token_fails_closed_without_naming_the_pin(
    token: SoftToken,
) -> None:
    """A bad PIN or token label raises KeyringError at open, and the message holds no PIN."""
    with pytest.raises(KeyringError) as bad_pin:
        Pkcs11Token(MODULE, token.label, "not-the-pin-4711")
    assert "4711" not in str(bad_pin.value) and token.pin not in str(bad_pin.value)
    assert "login" in str(bad_pin.value)
    with pytest.raises(KeyringError, match="no PKCS#11 token labelled 'elsewhere'"):
        Pkcs11Token(MODULE, "elsewhere", token.pin)
    with pytest.raises(KeyringError, match="cannot be loaded"):
        Pkcs11Token("/nonexistent/libpkcs11.so", token.label, token.pin)


def test_pin_file_is_preferred_and_must_be_private(tmp_path: Path) -> None:
    """The PIN file wins over the variable, loses its newline, and is refused when others may
    read it or when neither is set."""
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234\n", encoding="utf-8")
    os.chmod(pin_file, 0o600)
    assert read_pin("from-env", pin_file) == "1234"
    assert read_pin("from-env", None) == "from-env"
    os.chmod(pin_file, 0o644)
    with pytest.raises(KeyringError, match="readable by group or others"):
        read_pin("", pin_file)
    with pytest.raises(KeyringError, match="TRESOR_PKCS11_PIN_FILE"):
        read_pin("", None)


def test_concurrent_wraps_and_unwraps_share_one_session_safely(hsm: Pkcs11Token) -> None:
    """Eight threads wrapping and unwrapping at once on one provider all round-trip."""
    hsm.add_version()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                dek = os.urandom(32)
                version, blob = hsm.wrap(f"s-{n}-{i}", dek)
                assert hsm.unwrap(f"s-{n}-{i}", version, blob) == dek
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_lost_session_is_reopened(hsm: Pkcs11Token, token: SoftToken) -> None:
    """When the module is re-initialised under the provider (an HSM restart), the next call
    logs in again and still unwraps."""
    import pkcs11

    hsm.add_version()
    version, blob = hsm.wrap("s", DEK)
    pkcs11.lib(str(MODULE)).reinitialize()
    assert hsm.unwrap("s", version, blob) == DEK
    assert hsm.wrap("s", DEK)[0] == version


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
