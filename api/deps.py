"""Dependencies handlers declare by name (Litestar's explicit named dependencies)."""

from __future__ import annotations

from litestar.di import NamedDependency

from vault.context import VaultContext

#: The vault's services, provided app-wide as `vault`.
Vault = NamedDependency[VaultContext]
