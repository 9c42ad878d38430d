"""Debian's SoftHSM2 as a throwaway PKCS#11 token: one fresh token per test, in its own dir.

Without SoftHSM2 (`apt-get install softhsm2`) the PKCS#11 tests are skipped with a message
saying so; under CI=true they fail instead, like the PostgreSQL and browser tests.

SoftHSM2 reads SOFTHSM2_CONF (where the token directory is) once, in C_Initialize, and lists
only tokens that existed then. A subprocess (`tresor ...`) simply gets the variable; the test
process re-initialises the library after pointing it at the test's token (`activate`).

The fixtures `token` (a fresh token, active in this process) and `hsm` (a `Pkcs11Token`
logged in to it, closed after the test) are available to every test: tests/conftest.py
loads this module as a plugin.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import IN_CI
from vault.settings import Settings

if TYPE_CHECKING:
    from vault.crypto.pkcs11_token import Pkcs11Token

MODULE = Path(os.environ.get("TRESOR_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"))
HINT = (
    "install Debian's softhsm2 to run PKCS#11 tests (`apt-get install softhsm2`; "
    f"expected {MODULE} and softhsm2-util)"
)


def require_softhsm() -> None:
    """Skip (or, under CI=true, fail) unless SoftHSM2's module and softhsm2-util exist."""
    if MODULE.exists() and shutil.which("softhsm2-util"):
        return
    if IN_CI:
        pytest.fail("CI=true requires the PKCS#11 tests. " + HINT, pytrace=False)
    pytest.skip(HINT)


@dataclass(frozen=True)
class SoftToken:
    conf: Path
    label: str
    pin: str = dataclasses.field(repr=False)
    so_pin: str = dataclasses.field(repr=False)
    pin_file: Path

    def env(self) -> dict[str, str]:
        """The variables a `tresor` process needs to run on this token."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "TRESOR_KEK_PROVIDER": "pkcs11",
            "TRESOR_PKCS11_MODULE": str(MODULE),
            "TRESOR_PKCS11_TOKEN": self.label,
            "TRESOR_PKCS11_PIN_FILE": str(self.pin_file),
        }

    def settings(self, base: Settings) -> Settings:
        """`base` switched to this token."""
        return dataclasses.replace(
            base,
            kek_provider="pkcs11",
            pkcs11_module=MODULE,
            pkcs11_token=self.label,
            pkcs11_pin_file=self.pin_file,
        )


def init_token(directory: Path, label: str = "tresor-test") -> SoftToken:
    """A freshly initialised SoftHSM2 token with random SO and user PINs in `directory`."""
    require_softhsm()
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            pin,
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    pin_file = directory / "user.pin"
    fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(pin + "\n")
    return SoftToken(conf=conf, label=label, pin=pin, so_pin=so_pin, pin_file=pin_file)


def activate(token: SoftToken, monkeypatch: pytest.MonkeyPatch) -> SoftToken:
    """Point SoftHSM2 in this process at the token's directory (re-initialises the module)."""
    import pkcs11

    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    pkcs11.lib(str(MODULE)).reinitialize()
    return token


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftToken:
    """A fresh SoftHSM2 token in the test's directory, active in this process."""
    return activate(init_token(tmp_path / "hsm"), monkeypatch)


@pytest.fixture
def hsm(token: SoftToken) -> Iterator[Pkcs11Token]:
    """The Tresor KEK versions on `token`, logged in with its user PIN; closed afterwards."""
    from vault.crypto.pkcs11_token import Pkcs11Token

    t = Pkcs11Token(MODULE, token.label, token.pin)
    yield t
    t.close()
