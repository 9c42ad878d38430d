"""The planning report routes and the calendar (issue 21 items 3-5): no route answers a
count under k, narrowing the filters down to one customer shows nothing but "< 10", only
marketing and the DPO may read them, and bad rules are a 422 by JSON pointer. Both
databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from tests.vault.campaigns.test_reports import (
    DAY,
    MONTH,
    report_reads,
    seed_budgets,
    seed_consents,
    seed_contacts,
    seed_subjects,
)
from vault.audit.events import Actor
from vault.campaigns.audience import set_audience
from vault.campaigns.records import CampaignDraft, create

K = 10
#: Fields that are parameters or sizes, not counts of customers or contacts.
NOT_COUNTS = {"min_count", "months", "days", "brands", "rank", "basket"}


def counts_in(value, key=None):
    """Every count of an answer: (field, value) for numbers and "< k" strings."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from counts_in(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from counts_in(v, key)
    elif isinstance(value, int) and not isinstance(value, bool) and key not in NOT_COUNTS:
        yield key, value
    elif isinstance(value, str) and (value.startswith("< ") or value == "hidden"):
        yield key, value


async def _seed(vault) -> str:
    """A month with big groups and one lone customer: 12 e-mailed by `tresor`, 10 of whom
    withdraw; one texted by `tresor_outlet` at the hotline touchpoint who objects."""
    many = await seed_subjects(vault, 12)
    (lone,) = await seed_subjects(vault, 1, marketing_objection_at=DAY + timedelta(days=1))
    await seed_budgets(vault, many, 250)
    await seed_contacts(vault, many, n=2, touchpoint="newsletter.signup")
    await seed_contacts(vault, [lone], brand="tresor_outlet", type="service", channel="sms",
                        touchpoint="hotline.inbound", points=40)  # fmt: skip
    await seed_consents(vault, many[:10], status="withdrawn", withdrawn_at=DAY + timedelta(days=2))
    await seed_consents(vault, [lone], purpose="offers.phone")
    return lone


async def test_no_report_route_answers_a_count_under_k(vault):
    """Basket use, opt-outs, what-if and the calendar: every count is >= k, "< 10" or
    "hidden"."""
    await _seed(vault)
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        answers = [
            await http.get(f"/v1/reports/basket-use?month={MONTH}", headers=bearer(key)),
            await http.get(f"/v1/reports/opt-outs?month={MONTH}", headers=bearer(key)),
            await http.post("/v1/reports/what-if", headers=bearer(key),
                            json={"month": MONTH, "rules": {"points": {"commercial": 15}}}),
            await http.get(f"/v1/campaigns/calendar?month={MONTH}", headers=bearer(key)),
        ]  # fmt: skip
    seen = []
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.json()["min_count"] == K
        for field, n in counts_in(r.json()):
            assert n in (f"< {K}", "hidden") or (isinstance(n, int) and n >= K), (r.url, field, n)
            seen.append(n)
    # Real numbers were shown too; the lone customer's groups are masked, and the groups
    # beside them hidden, since each grouping's cells add up to the 13 customers.
    assert 13 in seen and 12 in seen and f"< {K}" in seen and "hidden" in seen
    what_if = answers[2].json()["cells"]
    # Today's 24 allowed would give away the 0 blocked (the what-if pair adds up to 24).
    assert {"brand": "tresor", "type": "commercial", "now_allowed": "hidden",
            "now_blocked": "< 10", "whatif_allowed": 12,
            "whatif_blocked": 12} in what_if  # fmt: skip


async def test_narrowing_the_filters_to_one_customer_singles_nobody_out(vault):
    """Brand, type, channel, touchpoint and month narrowed to the lone customer who
    objected: every count of the answer is "< 10", and so is the missed chance of the
    one customer with a basis for `offers.phone`; no answer names the customer."""
    lone = await _seed(vault)
    key = await client_key(vault, "planner", "marketing")
    narrow = (
        f"/v1/reports/opt-outs?month={MONTH}&brand=tresor_outlet&type=service&channel=sms"
        "&touchpoint=hotline.inbound&days=30"
    )
    async with api(vault) as http:
        r = await http.get(narrow, headers=bearer(key))
        use = await http.get(
            f"/v1/reports/basket-use?month={MONTH}&purpose=offers.phone&months=1",
            headers=bearer(key),
        )
    assert r.status_code == 200 and use.status_code == 200, (r.text, use.text)
    rows = r.json()["rows"]
    assert rows and {row["dimension"] for row in rows} == {
        "brand", "type", "channel", "touchpoint", "band"}  # fmt: skip
    assert {n for _, n in counts_in(rows)} == {f"< {K}"}
    assert use.json()["missed"] == f"< {K}"
    assert lone not in r.text and lone not in use.text


async def test_only_marketing_and_the_dpo_read_reports(vault):
    """A lookup or writer key is 403; marketing and dpo keys are answered."""
    async with api(vault) as http:
        for role, status in (("lookup", 403), ("writer", 403), ("marketing", 200), ("dpo", 200)):
            key = await client_key(vault, f"c-{role}", role, ["offers.sms"])
            r = await http.get("/v1/reports/opt-outs", headers=bearer(key))
            assert r.status_code == status, (role, r.text)


async def test_what_if_priorities_the_rules_do_not_know_are_a_422_by_pointer(vault):
    """An overdraft for an unknown priority is named by its entry; an unknown rule field
    is refused by the body's schema; nothing is replayed or audited."""
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        r = await http.post(
            "/v1/reports/what-if", headers=bearer(key),
            json={"month": MONTH, "rules": {"overdraft": [
                {"priority": "high", "points": 0}, {"priority": "urgent", "points": 3}]}},
        )  # fmt: skip
        unknown = await http.post(
            "/v1/reports/what-if", headers=bearer(key),
            json={"month": MONTH, "rules": {"points": {"gossip": 3}}},
        )  # fmt: skip
    assert_problem(r, 422)
    assert "/rules/overdraft/1/priority" in r.text, r.json()
    assert_problem(unknown, 422)
    assert "/rules/points" in unknown.text
    assert await report_reads(vault) == []


async def test_the_calendar_shows_the_overlap_of_three_brands_and_a_calamity_hold(vault):
    """12 customers in the audiences of three brands' campaigns in one week: the week's
    overlap is 12; a calamity campaign starting that week holds the planned offers whose
    window starts in its cool-down, counting the 12 shared members."""
    sids = await seed_subjects(vault, 12)
    await seed_consents(vault, sids, purpose="offers.sms")
    await seed_consents(vault, sids, purpose="incident.notice")
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    marketer = Actor("client", "planner")
    ids = {}
    for brand in ("tresor", "tresor_outlet", "tresor_finance"):
        draft = CampaignDraft(
            name=f"Offer {brand}", brand=brand, purpose="offers.sms",
            window_start=start + timedelta(hours=2), window_end=start + timedelta(days=1),
        )  # fmt: skip
        camp = await create(vault, marketer, frozenset(), draft)
        await set_audience(vault, marketer, camp.id, [("subject_id", s) for s in sids])
        ids[brand] = camp.id
    alarm = await create(vault, marketer, frozenset({"incident.notice"}), CampaignDraft(
        name="Recall", brand="tresor", purpose="incident.notice", type="calamity",
        window_start=start, window_end=start + timedelta(hours=6)))  # fmt: skip
    await set_audience(vault, marketer, alarm.id, [("subject_id", s) for s in sids])
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        r = await http.get("/v1/campaigns/calendar?month=2026-11", headers=bearer(key))
    assert r.status_code == 200, r.text
    body = r.json()
    (week,) = [w for w in body["weeks"] if w["week"] == "2026-W48"]
    assert week["brands"] == 3 and week["overlap"] == 12
    held = {(h["calamity_name"], h["held_name"], h["members"]) for h in body["holds"]}
    assert held == {("Recall", f"Offer {b}", 12) for b in ids}
