"""Typed reading of environment variables for `vault.settings`: every problem of one
environment is collected (and reported at once by `SettingsError`), not only the first."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

_N = TypeVar("_N", int, float)
_T = TypeVar("_T")


class EnvReader:
    """Reads typed variables through msgspec's conversion (so `8000`, not ` 8k`, is a
    port) and collects what is wrong instead of stopping at the first mistake."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def _convert(self, name: str, default: _N, kind: type[_N], what: str, maximum: Any) -> _N:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = msgspec.convert(raw, kind, strict=False)
        except msgspec.ValidationError:
            value = None
        if value is None or not 0 <= value <= maximum or value != value:  # NaN too
            bound = f" from 0 to {maximum}" if maximum != float("inf") else " of 0 or more"
            self.problems.append(f"{name} must be {what}{bound}")
            return default
        return value

    def whole(self, name: str, default: int, *, maximum: int | None = None) -> int:
        limit: Any = float("inf") if maximum is None else maximum
        return self._convert(name, default, int, "a whole number", limit)

    def number(self, name: str, default: float) -> float:
        return self._convert(name, default, float, "a number", float("inf"))

    def choice(
        self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False
    ) -> str:
        raw = self.env.get(name, default).strip()
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)}")
            return default
        return value

    def checked(self, default: _T, parse: Callable[..., _T], *args: Any) -> _T:
        """A value parsed by one of `vault.setting_values`' parsers, whose `ValueError` names
        the variable."""
        try:
            return parse(*args)
        except ValueError as exc:
            self.problems.append(str(exc))
            return default
