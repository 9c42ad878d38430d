"""Every refusal of a client's attempt on a subject is on record (security finding 6): the
404s and 409s of the subject, consent and preference routes each write one denial naming
the reason, never a value, and change nothing else."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.dsar import erase
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem, row_counts
from tests.support.self_service import seed_subject
from vault.audit.events import Actor
from vault.storage.audit_tables import audit_events

UNKNOWN = "00000000-0000-4000-8000-000000000000"
EVIDENCE = {
    "touchpoint": "hotline.inbound",
    "method": "recorded_call",
    "notice_version": "prefs-2026-11",
    "language": "de",
}
PREFERENCES = {"timezone": "Europe/Berlin", "evidence": EVIDENCE}


async def _denials(vault) -> list[tuple]:
    async with vault.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(audit_events.c.action, audit_events.c.subject_id, audit_events.c.reason)
                .where(audit_events.c.decision == "deny", audit_events.c.actor_id == "crm")
                .order_by(audit_events.c.seq)
            )
        ).all()
    return [tuple(r) for r in rows]


async def test_refused_attempts_on_subjects_consents_and_preferences_are_audited(vault):
    """Rectifying, recording a basis for, listing the bases of, and reading or setting the
    preferences of an unknown subject (404), the same writes for an erased one (409), and
    withdrawing an unknown consent (404) each leave one committed denial; no row changes."""
    sid, p = await seed_subject(vault, 861)
    gone, _ = await seed_subject(vault, 862)
    await erase(vault, Actor("dpo", "dpo-office"), gone)
    writer = await client_key(vault, "crm", "writer")
    basis = {"purpose": "order.delivery", "reference": "Bestellung 861"}
    before = await row_counts(vault)
    async with api(vault) as http:
        for method, path, body, status in (
            ("PATCH", f"/v1/subjects/{UNKNOWN}/contact", {"name": "Erika Neu"}, 404),
            ("PATCH", f"/v1/subjects/{gone}/contact", {"name": "Erika Neu"}, 409),
            ("POST", f"/v1/subjects/{UNKNOWN}/consents", basis, 404),
            ("POST", f"/v1/subjects/{gone}/consents", basis, 409),
            ("GET", f"/v1/subjects/{UNKNOWN}/consents", None, 404),
            ("POST", f"/v1/subjects/{sid}/consents/{UNKNOWN}/withdraw", None, 404),
            ("GET", f"/v1/subjects/{UNKNOWN}/preferences", None, 404),
            ("PUT", f"/v1/subjects/{UNKNOWN}/preferences", PREFERENCES, 404),
            ("PUT", f"/v1/subjects/{gone}/preferences", PREFERENCES, 409),
        ):
            r = await http.request(method, path, json=body, headers=bearer(writer))
            assert_problem(r, status)
    after = await row_counts(vault)
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    assert await _denials(vault) == [
        ("client:contact:rectify", UNKNOWN, "subject_not_found"),
        ("client:contact:rectify", gone, "subject_erased"),
        ("client:basis:record", UNKNOWN, "subject_not_found"),
        ("client:basis:record", gone, "subject_erased"),
        ("client:consent:list", UNKNOWN, "subject_not_found"),
        ("client:consent:withdraw", sid, "consent_not_found"),
        ("client:preferences:read", UNKNOWN, "subject_not_found"),
        ("client:preferences:set", UNKNOWN, "subject_not_found"),
        ("client:preferences:set", gone, "subject_erased"),
    ]
    async with vault.engine.connect() as conn:
        details = (await conn.execute(select(audit_events.c.detail))).scalars().all()
    assert not [d for d in details if d and ("Erika" in d or p["email"] in d)]
