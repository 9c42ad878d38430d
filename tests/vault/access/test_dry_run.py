"""The audience dry run on both databases: the batch's counts without revealing anything,
audited; with a contact, the basket's denials rehearsed and nothing reserved."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from tests.support.batches import (
    ALLOWED,
    SHOP,
    UNKNOWN_ID,
    batch_lines,
    contact_rows,
    fill_basket,
    population,
)
from tests.support.factories import WRITER
from tests.support.privacy import audit_rows
from vault.access import bulk, dry_run, statements
from vault.access.lookup import LookupDenied
from vault.audit.events import AuditAction
from vault.bases.consents import record_basis
from vault.errors import InvalidInput
from vault.outreach.basket import ContactSpec
from vault.subjects.store import create_subject


def _counting_only(vault) -> None:
    """The dry run's counting without its group threshold (policy minimum 2, here 1), to
    compare its counts with the batch on a small population; the threshold and the
    suppression are tested in tests/api/subjects/test_dry_run_api.py."""
    vault.pressure_rules = dataclasses.replace(vault.pressure_rules, dry_run_min_audience=1)


async def _dry_summaries(vault) -> list[dict[str, Any]]:
    """The dry runs' summary events (the per-subject ones carry a subject id)."""
    return [
        e
        for e in await audit_rows(vault)
        if e["action"] == AuditAction.AUDIENCE_DRY_RUN and e["subject_id"] is None
    ]


async def test_dry_run_counts_match_batch_and_reveal_nothing(vault):
    _counting_only(vault)
    pop = await population(vault)
    no_mail = await create_subject(vault, WRITER, {"phone": "+4930555123", "name": "Ohne Mail"})
    await record_basis(vault, WRITER, no_mail, "order.delivery", reference="order")
    values = [*pop["ids"], UNKNOWN_ID, "bad", pop["ids"][0], no_mail]
    lines = await batch_lines(vault, "subject_id", values)
    result = await dry_run.dry_run(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=values,
    )
    channel = vault.catalogue.get("order.delivery").channel
    need = statements.CHANNEL_FIELD[channel]
    expected_reach = sum(1 for line in lines if need in line.get("fields", {}))
    assert result.total == len(values)
    assert result.reachable == expected_reach
    reasons: dict[str, int] = {}
    for line in lines:
        reason = line.get("reason") or (None if need in line["fields"] else "no_contact_data")
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    assert result.unreachable == reasons
    dry = await _dry_summaries(vault)
    assert len(dry) == 1
    detail = json.loads(dry[0]["detail"])
    assert detail["reachable"] == result.reachable and detail["total"] == len(values)
    for v in pop["ids"]:
        assert v not in dry[0]["detail"]
    with pytest.raises(InvalidInput):
        await dry_run.dry_run(
            vault,
            SHOP,
            ALLOWED,
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifiers=values,
            channel=next(
                c
                for c in ("email", "letter", "sms", "phone")
                if c not in set(vault.catalogue.get("order.delivery").channels)
            ),
        )


async def test_dry_run_purpose_not_allowed(vault):
    with pytest.raises(LookupDenied):
        await dry_run.dry_run(
            vault,
            SHOP,
            frozenset(),
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifiers=[UNKNOWN_ID],
        )
    events = [e for e in await audit_rows(vault) if e["action"] == AuditAction.AUDIENCE_DRY_RUN]
    assert [(e["decision"], e["reason"]) for e in events] == [("deny", "purpose_not_allowed")]


async def test_dry_run_with_contact_counts_basket_denials_and_reserves_nothing(vault):
    """With a contact the dry run rehearses the reservations: full baskets and duplicates
    count as unreachable, and no contact or budget row is left behind."""
    _counting_only(vault)
    pop = await population(vault)
    a, b, c = pop["ids"][:3]
    await fill_basket(vault, a)
    before = await contact_rows(vault)
    values = [a, b, c, b, pop["ids"][4]]
    result = await dry_run.dry_run(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=values,
        contact=ContactSpec(brand="tresor"),
    )
    assert result.total == 5 and result.reachable == 2
    assert result.unreachable == {
        "contact_budget_exhausted": 1,
        "duplicate_identifier": 1,
        "no_consent": 1,
    }
    assert await contact_rows(vault) == before
    dry = await _dry_summaries(vault)
    assert len(dry) == 1
    detail = json.loads(dry[0]["detail"])
    assert detail["contact"]["brand"] == "tresor" and detail["reachable"] == 2
    # The same batch then really reaches exactly those two.
    out: list[dict[str, Any]] = []
    async for blob in bulk.resolve_batch(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=values,
        contact=ContactSpec(brand="tresor"),
    ):
        out.extend(json.loads(x) for x in blob.decode().splitlines())
    assert sum(1 for line in out if "fields" in line) == result.reachable
