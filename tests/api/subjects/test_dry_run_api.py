"""POST /v1/lookup/dry-run answers for groups, never for one person (security finding 3).

A dry run needs `dry_run_min_audience` (policies/contact-pressure.toml, 10) distinct known
subjects; a bucket (reachable, or a reason) with fewer members than that is not shown but
counted in `suppressed`; every subject concerned gets an audit event of its own (subject
id, no identifier value), committed before the answer leaves. Both databases."""

from __future__ import annotations

import json

from tests.support.dsar import DPO, NEWS, contract, new_subject
from tests.support.factories import WRITER, api, bearer, client_key
from tests.support.faults import audit_down
from tests.support.privacy import assert_problem, audit_rows
from vault.audit.events import AuditAction
from vault.bases.consents import record_basis
from vault.rights.restriction import restrict

DRY = str(AuditAction.AUDIENCE_DRY_RUN)


async def _dry_events(vault) -> list[dict]:
    return [e for e in await audit_rows(vault) if e["action"] == DRY]


async def _customers(vault, n: int, seed: int) -> tuple[list[str], list[dict]]:
    """`n` customers with a delivery contract."""
    ids, people = [], []
    for k in range(n):
        sid, p = await new_subject(vault, seed + k)
        await contract(vault, sid)
        ids.append(sid)
        people.append(p)
    return ids, people


async def test_one_address_gets_no_answer_about_that_person(vault):
    """The reported attack: a dry run with one e-mail address (consent pending) no longer
    tells `consent_unconfirmed`; it is refused audience_too_small, and the refusal is in
    the subject's own audit trail (its id, not its address)."""
    sid, p = await new_subject(vault, 951)
    await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)  # unconfirmed
    shop = await client_key(vault, "news", "lookup", ["newsletter.email"])
    async with api(vault) as http:
        r = await http.post(
            "/v1/lookup/dry-run",
            json={"purpose": "newsletter.email", "emails": [p["email"]]},
            headers=bearer(shop),
        )
    body = assert_problem(r, 403)
    assert body["reason"] == "audience_too_small", body
    assert "consent_unconfirmed" not in r.text and p["email"] not in r.text
    events = await _dry_events(vault)
    assert sorted((e["subject_id"] or "", e["decision"], e["reason"]) for e in events) == [
        ("", "deny", "audience_too_small"),
        (sid, "deny", "audience_too_small"),
    ]
    assert p["email"].lower() not in json.dumps(events, default=str).lower()


async def test_padding_with_unknown_addresses_or_duplicates_does_not_reach_the_threshold(vault):
    """Nine unknown addresses plus one real one, or the real one ten times, are still an
    audience of one known subject: refused, and nothing about the person is answered."""
    sid, p = await new_subject(vault, 952)
    await contract(vault, sid)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    padded = [f"nobody{k}@nicht-vorhanden.de" for k in range(9)] + [p["email"]]
    async with api(vault) as http:
        for emails in (padded, [p["email"]] * 10, [p["email"].upper()] + [p["email"]] * 12):
            r = await http.post(
                "/v1/lookup/dry-run",
                json={"purpose": "order.delivery", "emails": emails},
                headers=bearer(shop),
            )
            assert assert_problem(r, 403)["reason"] == "audience_too_small", r.text
            assert "reachable" not in r.json()


async def test_small_buckets_are_suppressed_and_every_subject_is_audited(vault):
    """Twelve customers, one of them restricted: the restricted one's bucket (1 < 10) is
    not shown, it is counted in `suppressed`; the eleven reachable are shown. Each of the
    twelve has an event with its id and its own outcome, and no identifier value is in the
    trail."""
    ids, people = await _customers(vault, 12, 960)
    await restrict(vault, DPO, ids[0])
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    emails = [p["email"] for p in people] + ["nobody@nicht-vorhanden.de"]
    async with api(vault) as http:
        r = await http.post(
            "/v1/lookup/dry-run",
            json={"purpose": "order.delivery", "emails": emails},
            headers=bearer(shop),
        )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "total": 13,
        "reachable": 11,
        "unreachable": {},
        "suppressed": 2,
        "min_audience": 10,
    }
    events = await _dry_events(vault)
    per_subject = {e["subject_id"]: (e["decision"], e["reason"]) for e in events if e["subject_id"]}
    assert per_subject == {
        ids[0]: ("deny", "subject_restricted"),
        **{sid: ("allow", None) for sid in ids[1:]},
    }
    (summary,) = [e for e in events if e["subject_id"] is None]
    assert json.loads(summary["detail"])["unreachable"] == {
        "subject_not_found": 1,
        "subject_restricted": 1,
    }
    trail = json.dumps(events, default=str).lower()
    assert not [p["email"] for p in people if p["email"].lower() in trail]
    assert "nobody@nicht-vorhanden.de" not in trail


async def test_the_answer_leaves_only_after_every_event_committed(vault):
    """With the audit trail down the dry run answers 503 and no counts."""
    ids, _ = await _customers(vault, 10, 980)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    async with api(vault) as http:
        async with audit_down(vault):
            r = await http.post(
                "/v1/lookup/dry-run",
                json={"purpose": "order.delivery", "subject_ids": ids},
                headers=bearer(shop),
            )
        assert_problem(r, 503)
        assert "reachable" not in r.text
        r = await http.post(
            "/v1/lookup/dry-run",
            json={"purpose": "order.delivery", "subject_ids": ids},
            headers=bearer(shop),
        )
        assert r.status_code == 200 and r.json()["reachable"] == 10
    assert len(await _dry_events(vault)) == 11  # only the committed run: 10 + the summary
