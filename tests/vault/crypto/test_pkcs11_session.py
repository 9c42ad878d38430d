"""Logging in to a real SoftHSM2 token (vault.crypto.pkcs11_session): the PIN from a private
file, a wrong PIN or token failing closed without naming the PIN, one session shared safely by
threads, and a lost session reopened."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.support.softhsm import MODULE, SoftToken
from vault.crypto import KeyringError
from vault.crypto.pkcs11_session import read_pin
from vault.crypto.pkcs11_token import Pkcs11Token

DEK = bytes(range(32))


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
