"""Changing contact preferences (vault.outreach.preference_changes): every change kept in
history with its evidence and audited without values, self-service changes as the subject's
own, bad input and erased subjects changing nothing, instruction evidence sealed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER
from tests.support.privacy import CANARY_AGENT, CANARY_IP, audit_rows, raw_database_bytes
from tests.support.self_service import seed_subject
from vault.audit.events import Actor, AuditAction
from vault.bases import consents
from vault.bases.consents import Evidence
from vault.errors import Conflict, InvalidInput
from vault.outreach import preference_changes
from vault.storage.outreach_tables import contact_preference_history, contact_preferences

EVIDENCE = Evidence(
    touchpoint="hotline.inbound",
    method="recorded_call",
    notice_version="prefs-2026-11",
    language="de",
)


async def _subject(vault, seed: int = 7) -> str:
    sid, _ = await seed_subject(vault, seed)
    await consents.record_basis(vault, WRITER, sid, "incident.notice", reference="recall R-1")
    return sid


async def _set(vault, sid, raw, evidence=EVIDENCE, actor=WRITER, source="client"):
    return await preference_changes.set_preferences(
        vault, actor, sid, raw, source=source, evidence=evidence
    )


async def _pref_rows(vault) -> tuple[int, int]:
    async with vault.engine.connect() as conn:
        a = (await conn.execute(select(func.count()).select_from(contact_preferences))).scalar_one()
        b = (
            await conn.execute(select(func.count()).select_from(contact_preference_history))
        ).scalar_one()
    return a, b


async def test_every_change_is_kept_in_history_and_audited_without_values(vault):
    """Two changes give versions 1 and 2, two history rows with evidence, and two audit
    events naming only the changed parts."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {"timezone": "Europe/Berlin", "quiet": {"phone": {"start": "20:00", "end": "08:00"}}},
    )
    view = await _set(
        vault,
        sid,
        {
            "timezone": "Europe/Berlin",
            "monthly_cap_points": 12.5,
            "quiet": {"phone": {"start": "20:00", "end": "08:00"}},
        },
    )
    assert view.preferences is not None and view.preferences.version == 2
    assert view.preferences.monthly_cap_tenths == 125
    assert [h.version for h in view.history] == [2, 1]
    assert view.history[0].touchpoint == "hotline.inbound"
    assert view.history[0].preferences["monthly_cap_points"] == 12.5
    events = [
        e for e in await audit_rows(vault) if e["action"] == AuditAction.CLIENT_PREFERENCES_SET
    ]
    assert [json.loads(e["detail"])["preferences"]["changed"] for e in events] == [
        ["timezone", "quiet"],
        ["monthly_cap"],
    ]
    for e in events:
        assert e["subject_id"] == sid and e["actor_id"] == "crm"
        assert "Europe/Berlin" not in e["detail"] and "20:00" not in e["detail"]
        assert "12.5" not in e["detail"]


async def test_self_service_changes_are_audited_as_the_subjects_own(vault):
    """A change from the privacy centre is recorded with the self-service source and evidence."""
    from vault.rights.selfservice import subject_actor

    sid = await _subject(vault)
    view = await _set(
        vault,
        sid,
        {"timezone": "Asia/Tokyo", "preferred_channels": {"calamity": "sms"}},
        evidence=preference_changes.self_service_evidence("en"),
        actor=subject_actor(),
        source="self_service",
    )
    assert view.history[0].source == "self_service"
    assert view.history[0].touchpoint == "web.privacy_centre"
    actions = [e["action"] for e in await audit_rows(vault)]
    assert AuditAction.SUBJECT_PREFERENCES_SET in actions


async def test_bad_input_changes_nothing_and_writes_no_event(vault):
    """A cap above the basket, a bad zone or missing evidence leave no row and no event."""
    sid = await _subject(vault)
    before_events = len(await audit_rows(vault))
    for raw, evidence in (
        ({"timezone": "Europe/Berlin", "monthly_cap_points": 30}, EVIDENCE),
        ({"timezone": "Nowhere/Land"}, EVIDENCE),
        ({"timezone": "Europe/Berlin"}, None),
        ({"timezone": "Europe/Berlin"}, Evidence("no.such.touchpoint", "web_form", "v1", "de")),
    ):
        with pytest.raises(InvalidInput):
            await _set(vault, sid, raw, evidence=evidence)
    assert await _pref_rows(vault) == (0, 0)
    assert len(await audit_rows(vault)) == before_events


async def test_an_erased_subject_cannot_get_preferences(vault):
    """Setting preferences for an erased subject is a conflict and stores nothing."""
    from tests.support.dsar import erase

    sid = await _subject(vault)
    await erase(vault, Actor("dpo", "tests"), sid)
    with pytest.raises(Conflict):
        await _set(vault, sid, {"timezone": "Europe/Berlin"})
    assert await _pref_rows(vault) == (0, 0)


async def test_sealed_evidence_keeps_ip_and_user_agent_out_of_storage(vault):
    """The IP and user agent of an instruction are stored only sealed under the subject's DEK."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {"timezone": "Europe/Berlin"},
        evidence=Evidence(
            "hotline.inbound",
            "recorded_call",
            "v1",
            "de",
            ip=CANARY_IP,
            user_agent=CANARY_AGENT,
        ),
    )
    raw = await raw_database_bytes(vault)
    assert CANARY_IP.encode() not in raw and CANARY_AGENT.encode() not in raw
