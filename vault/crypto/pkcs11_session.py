"""Logging in to a PKCS#11 token: the user PIN, and the one session a process shares per
token (`vault.crypto.pkcs11_provider` tells what runs on it).

Sessions: one logged-in read-write session per (module, token, PIN) in a process, shared by
every provider on it and used under a lock (a PKCS#11 session must not run two operations
at once; token calls take microseconds on SoftHSM2). A lost session (token removed, HSM
restarted, logged out) is reopened once; if that fails the call raises `KeyringError`, which
the vault turns into "unavailable" (fail closed). The PIN is never logged nor put into an
error message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from pkcs11 import exceptions as p11

from vault.crypto.errors import KeyringError

#: Errors after which the session is worth reopening once: the token went away or the
#: session (or its login) is gone. Anything else is an answer of the token, not an outage.
SESSION_LOST = (
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.UserNotLoggedIn,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
)

T = TypeVar("T")


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


class TokenLink:
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
                except SESSION_LOST as exc:
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


_LINKS: dict[tuple[str, str, str], TokenLink] = {}
_LINKS_LOCK = threading.Lock()


def acquire(module: str, token_label: str, pin: str) -> TokenLink:
    """The process's session on the token, shared: opened by the first user."""
    with _LINKS_LOCK:
        link = _LINKS.get((module, token_label, pin))
        if link is None:
            link = _LINKS[(module, token_label, pin)] = TokenLink(module, token_label, pin)
        link.users += 1
        return link


def release(link: TokenLink) -> None:
    """One user fewer; the last one closes the session."""
    with _LINKS_LOCK:
        link.users -= 1
        if link.users > 0:
            return
        _LINKS.pop((link.module, link.token_label, link._pin), None)
    link.close()
