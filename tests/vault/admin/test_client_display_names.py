"""A client's display name (what customers read for it), on both databases: set at
creation or later, cleared, validated, audited, listed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tests.support.factories import ADMIN
from vault.admin.clients import create_client, list_clients, set_display_name
from vault.audit.events import AuditAction
from vault.errors import InvalidInput, NotFound
from vault.storage.audit_tables import audit_events


async def _update_details(vault) -> list[dict]:
    async with vault.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_events.c.detail).where(
                audit_events.c.action == str(AuditAction.CLIENT_UPDATE)
            )
        )
        return [json.loads(r.detail) if isinstance(r.detail, str) else r.detail for r in rows]


async def test_a_display_name_is_kept_from_creation_changed_and_cleared(vault):
    """Trimmed at creation, replaced by `set_display_name`, and "" clears it; each listing
    shows the current one and each change is audited with the new value."""
    info, _ = await create_client(
        vault, ADMIN, "shop", "lookup", ["order.delivery"], display_name="  Online-Shop "
    )
    assert info.display_name == "Online-Shop"
    assert [c.display_name for c in await list_clients(vault)] == ["Online-Shop"]
    assert await set_display_name(vault, ADMIN, "shop", "Webshop") == "Webshop"
    assert [c.display_name for c in await list_clients(vault)] == ["Webshop"]
    assert await set_display_name(vault, ADMIN, "shop", "") is None
    assert [c.display_name for c in await list_clients(vault)] == [None]
    details = await _update_details(vault)
    assert [d["display_name"] for d in details] == ["Webshop", None]


@pytest.mark.parametrize("bad", ["x" * 101, "Shop\nFake", "Shop\x00"])
async def test_a_bad_display_name_is_refused_and_nothing_changes(vault, bad):
    """Over 100 characters or with control characters: InvalidInput, no change, no event."""
    await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"], display_name="Shop")
    with pytest.raises(InvalidInput):
        await set_display_name(vault, ADMIN, "shop", bad)
    with pytest.raises(InvalidInput):
        await create_client(vault, ADMIN, "other", "writer", [], display_name=bad)
    assert [c.name for c in await list_clients(vault)] == ["shop"]
    assert [c.display_name for c in await list_clients(vault)] == ["Shop"]
    assert await _update_details(vault) == []


async def test_an_unknown_client_has_no_display_name_to_set(vault):
    """Naming a client that does not exist is NotFound."""
    with pytest.raises(NotFound):
        await set_display_name(vault, ADMIN, "nobody", "Somebody")
