"""Grants: who may use what a full basket does not stop (issue 21).

Priorities above `normal` and calamity contacts are granted in
`policies/contact-pressure.toml`, never claimed by the caller: to API clients by name, or to
every client allowed one of the named purposes. Parsed here for `contact_pressure`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

#: Who may claim a priority above `normal` or announce a calamity when the rules name
#: nobody: the clients allowed the purpose for safety and recall notices.
DEFAULT_GRANT_PURPOSES = frozenset({"incident.notice"})


@dataclass(frozen=True, slots=True)
class Grant:
    """Who may use something the basket does not stop: API clients by name, or every
    client allowed one of `purposes`. Priorities are granted, not claimed."""

    clients: frozenset[str]
    purposes: frozenset[str]

    def allows(self, client: str, client_purposes: frozenset[str]) -> bool:
        return client in self.clients or not self.purposes.isdisjoint(client_purposes)


_CLIENT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")  # as vault.admin.clients names them
_PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
GRANT_KEYS = frozenset({"granted_clients", "granted_purposes"})


def parse_grant(
    raw: dict[str, Any], where: str, known_purposes: Collection[str] | None
) -> Grant | str:
    """The grant of a [priority.<name>] or [calamity] table, or what is wrong with it.
    Without either key: the clients allowed `incident.notice` (DEFAULT_GRANT_PURPOSES)."""
    if not GRANT_KEYS & set(raw):
        return Grant(frozenset(), DEFAULT_GRANT_PURPOSES)
    clients = raw.get("granted_clients", [])
    purposes = raw.get("granted_purposes", [])
    if not isinstance(clients, list) or not all(
        isinstance(c, str) and _CLIENT_RE.match(c) for c in clients
    ):
        return f"{where}: granted_clients must list API client names"
    if not isinstance(purposes, list) or not all(
        isinstance(p, str) and _PURPOSE_RE.match(p) for p in purposes
    ):
        return f"{where}: granted_purposes must list purpose ids"
    unknown = sorted(set(purposes) - set(known_purposes)) if known_purposes is not None else []
    if unknown:
        return f"{where}: granted_purposes names unknown purpose(s) {unknown}"
    return Grant(frozenset(clients), frozenset(purposes))
