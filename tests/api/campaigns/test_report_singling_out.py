"""An attacker with a `marketing` key tries to single out one customer from every report
route (issue 21 quality bar): in each seeded population exactly one customer differs, and
the attacker narrows the filters as far as they go, subtracts two permitted answers
(fewer filters, another window, another period, another `months`, no `purpose`), and
subtracts a grouping's shown cells from a total it can see. Every attempt must leave the
customer's cell unknown: never a number, and never derivable as 0 to k - 1. Both
databases. The rules defended are those of `vault.campaigns.masking`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations

from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from tests.vault.campaigns.test_reports import (
    DAY,
    MONTH,
    seed_budgets,
    seed_consents,
    seed_contacts,
    seed_subjects,
)
from tests.vault.campaigns.test_touchpoint_report import seed_given
from vault.audit.events import Actor
from vault.campaigns.audience import set_audience
from vault.campaigns.records import CampaignDraft, create

K = 10
COLUMNS = ("contacted", "withdrawals", "objections", "erasures")


def leaked(value) -> bool:
    """Whether a derived value would single out: a count of 0 to k - 1 (a masked cell's
    true range) recovered exactly."""
    return 0 <= value < K


async def _get(http, key, path) -> dict:
    r = await http.get(path, headers=bearer(key))
    assert r.status_code == 200, (path, r.text)
    return r.json()


def _cells(body) -> dict[tuple[str, str, str], object]:
    return {
        (row["dimension"], row["value"], col): row[col] for row in body["rows"] for col in COLUMNS
    }


def _within_answer_leaks(cells) -> list:
    """Subtract: for each column, a dimension whose cells are all numbers gives a total;
    another dimension's cells not shown hold the total minus the shown rest (the seed's
    dimensions partition the contacted customers), which must not be 0 to k - 1."""
    found = []
    dims = {d for d, _, _ in cells}
    for col in COLUMNS:
        by_dim = {d: {v: n for (dd, v, c), n in cells.items() if dd == d and c == col}
                  for d in dims}  # fmt: skip
        totals = [sum(v.values()) for v in by_dim.values()
                  if all(isinstance(n, int) for n in v.values())]  # fmt: skip
        for dim, values in by_dim.items():
            unknown = [v for v, n in values.items() if not isinstance(n, int)]
            if not unknown:
                continue
            rest = sum(n for n in values.values() if isinstance(n, int))
            found += [(col, dim, unknown, t - rest) for t in totals if leaked(t - rest)]
    return found


async def _opt_out_population(vault) -> str:
    """24 customers e-mailed at a half-full basket, 12 of whom withdraw 3 days later; 11
    texted at a full basket, of whom only the target withdraws, 10 days later."""
    crowd = await seed_subjects(vault, 24)
    texted = await seed_subjects(vault, 11)
    target = texted[0]
    await seed_budgets(vault, crowd, 150)
    await seed_budgets(vault, texted, 250)
    await seed_contacts(vault, crowd, touchpoint="email.newsletter")
    await seed_contacts(vault, texted, channel="sms", touchpoint="sms.notification")
    await seed_consents(vault, crowd[:12], status="withdrawn", withdrawn_at=DAY + timedelta(days=3))
    await seed_consents(vault, [target], status="withdrawn", withdrawn_at=DAY + timedelta(days=10))
    return target


async def test_opt_outs_narrowest_filters_show_the_target_as_nothing_but_masked(vault):
    """Brand, type, channel and touchpoint narrowed to the texted customers and the window
    around the target's withdrawal: no withdrawal count is a number; a window of one's own
    choosing (10 or 11 days) is a 422."""
    target = await _opt_out_population(vault)
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        for days in (7, 14, 30):
            body = await _get(http, key, (
                f"/v1/reports/opt-outs?month={MONTH}&days={days}&brand=tresor&type=commercial"
                "&channel=sms&touchpoint=sms.notification"))  # fmt: skip
            assert body["rows"]
            assert all(not isinstance(row["withdrawals"], int) for row in body["rows"]), body
            assert target not in str(body)
        # Windows are a fixed set: no two answers differ by the opt-outs of one day.
        for days in (10, 11):
            r = await http.get(f"/v1/reports/opt-outs?month={MONTH}&days={days}",
                               headers=bearer(key))  # fmt: skip
            assert_problem(r, 422)


async def test_opt_outs_differencing_two_answers_recovers_nothing(vault):
    """Every pair of answers that nest (a filter left out, another window) and every
    grouping against a total: no difference of shown numbers is 1 to k - 1 and no masked
    cell comes out as 0 to k - 1; in particular the unfiltered minus the e-mail-only
    withdrawals, and 14 days minus 7 days, do not give the target's 1."""
    await _opt_out_population(vault)
    key = await client_key(vault, "planner", "marketing")
    filters = {"brand": "tresor", "type": "commercial", "channel": "email",
               "touchpoint": "email.newsletter"}  # fmt: skip
    subsets = [frozenset(c) for r in range(3) for c in combinations(sorted(filters), r)]
    answers = {}
    async with api(vault) as http:
        for names in subsets:
            for days in (7, 14, 30, 60):
                query = "".join(f"&{n}={filters[n]}" for n in sorted(names))
                path = f"/v1/reports/opt-outs?month={MONTH}&days={days}{query}"
                answers[(names, days)] = _cells(await _get(http, key, path))
    for (names_a, days_a), (names_b, days_b) in combinations(answers, 2):
        if not (names_a <= names_b or names_b <= names_a):
            continue  # not nested: the difference is no set of customers
        a, b = answers[(names_a, days_a)], answers[(names_b, days_b)]
        for cell in a.keys() & b.keys():
            if isinstance(a[cell], int) and isinstance(b[cell], int):
                assert a[cell] == b[cell] or abs(a[cell] - b[cell]) >= K, (
                    names_a, days_a, names_b, days_b, cell, a[cell], b[cell])  # fmt: skip
    for (names, days), cells in answers.items():
        assert _within_answer_leaks(cells) == [], (names, days)
    everyone = answers[(frozenset(), 30)][("brand", "tresor", "withdrawals")]
    mailed = answers[(frozenset({"channel"}), 30)][("brand", "tresor", "withdrawals")]
    assert not (isinstance(everyone, int) and isinstance(mailed, int) and everyone - mailed == 1)


async def test_basket_use_bands_and_missed_chances_do_not_give_the_target_away(vault):
    """The target is the only customer at a full basket and the only one with a basis
    last contacted in August: neither the bands against the customers' total nor the
    missed chances of two `months` or with and without `purpose` give a 1."""
    half = await seed_subjects(vault, 25)
    idle = await seed_subjects(vault, 20)
    (target,) = await seed_subjects(vault, 1)
    await seed_budgets(vault, half, 100)
    await seed_budgets(vault, [target], 250)
    await seed_contacts(vault, half)
    await seed_contacts(vault, [target], at=datetime(2026, 8, 10, tzinfo=UTC))
    await seed_consents(vault, idle + [target])
    await seed_consents(vault, idle, purpose="offers.phone")
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        answers = {
            (months, purpose): await _get(
                http,
                key,
                f"/v1/reports/basket-use?month={MONTH}&months={months}"
                + (f"&purpose={purpose}" if purpose else ""),
            )  # fmt: skip
            for months in range(1, 7)
            for purpose in (None, "offers.sms", "offers.phone")
        }
    for body in answers.values():
        bands = {b["band"]: b["customers"] for b in body["bands"]}
        shown = [n for n in bands.values() if isinstance(n, int)]
        unknown = [b for b, n in bands.items() if not isinstance(n, int)]
        assert bands["full"] == f"< {K}"
        if unknown and isinstance(body["customers"], int):
            assert not leaked(body["customers"] - sum(shown)), body
        assert target not in str(body)
    missed = [(a, body["missed"]) for a, body in answers.items()]
    for (a, x), (b, y) in combinations(missed, 2):
        if isinstance(x, int) and isinstance(y, int):
            assert x == y or abs(x - y) >= K, (a, x, b, y)


async def test_the_touchpoint_report_hides_a_thin_month_from_overlapping_periods(vault):
    """The target alone gave a consent at the fair booth in October, 15 customers in
    November: no two periods' counts differ by the target's consent."""
    crowd = await seed_subjects(vault, 15)
    (target,) = await seed_subjects(vault, 1)
    await seed_given(vault, crowd, "fair.booth")
    await seed_given(vault, [target], "fair.booth", at=datetime(2026, 10, 6, 9, tzinfo=UTC))
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        counts = {}
        for month in ("2026-10", "2026-11"):
            for months in (1, 2, 3):
                body = await _get(
                    http, key, f"/v1/reports/touchpoints?month={month}&months={months}"
                )
                (row,) = [r for g in body["groups"] for r in g["touchpoints"]
                          if r["touchpoint"] == "fair.booth"]  # fmt: skip
                counts[(month, months)] = row["counts"]["consents_given"]
                assert target not in str(body)
    assert counts[("2026-11", 1)] == 15
    assert counts[("2026-10", 1)] == f"< {K}"
    for (a, x), (b, y) in combinations(counts.items(), 2):
        if isinstance(x, int) and isinstance(y, int):
            assert x == y or abs(x - y) >= K, (a, x, b, y)


async def test_what_if_neither_a_cell_nor_the_change_singles_out_the_target(vault):
    """20 customers with two allowed offers each; the target's third offer, beyond the
    basket today, passes with a bigger basket. Today's and the what-if counts of the cell,
    and the month's total, never give the target's blocked contact as a number."""
    crowd = await seed_subjects(vault, 20)
    (target,) = await seed_subjects(vault, 1)
    await seed_contacts(vault, crowd, n=2)
    await seed_contacts(vault, [target], n=3)
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        r = await http.post("/v1/reports/what-if", headers=bearer(key),
                            json={"month": MONTH, "rules": {"basket_points": 40}})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    (cell,) = [c for c in body["cells"] if (c["brand"], c["type"]) == ("tresor", "commercial")]
    values = [cell[f] for f in ("now_allowed", "now_blocked", "whatif_allowed", "whatif_blocked")]
    assert cell["now_blocked"] == f"< {K}"
    # One pair shown in full gives the cell's total; the other pair's shown count would
    # then give its masked partner.
    pairs = (values[:2], values[2:])
    for mine, other in (pairs, pairs[::-1]):
        if all(isinstance(n, int) for n in other) and sum(isinstance(n, int) for n in mine) == 1:
            known = next(n for n in mine if isinstance(n, int))
            assert not leaked(sum(other) - known), cell
    if isinstance(cell["now_allowed"], int) and isinstance(cell["whatif_allowed"], int):
        assert not 0 < cell["whatif_allowed"] - cell["now_allowed"] < K, cell
    if isinstance(body["contacts"], int) and isinstance(cell["now_allowed"], int):
        assert not leaked(body["contacts"] - cell["now_allowed"]), body
    assert target not in r.text


async def test_the_calendar_masks_an_audience_narrowed_to_one_customer(vault):
    """A campaign whose audience is the target alone: its forecast in the calendar shows
    every count as "< 10", and its id never appears."""
    (target,) = await seed_subjects(vault, 1)
    await seed_consents(vault, [target])
    marketer = Actor("client", "planner")
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    camp = await create(vault, marketer, frozenset(), CampaignDraft(
        name="Just one", brand="tresor", purpose="offers.sms",
        window_start=start, window_end=start + timedelta(days=1)))  # fmt: skip
    await set_audience(vault, marketer, camp.id, [("subject_id", target)])
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        body = await _get(http, key, "/v1/campaigns/calendar?month=2026-11")
    (entry,) = [c for c in body["campaigns"] if c["id"] == camp.id]
    for field in ("audience", "reachable", "blocked_by_basket", "blocked_by_preferences",
                  "blocked_by_quiet_hours", "missing_basis"):  # fmt: skip
        assert entry[field] == f"< {K}", (field, entry)
    assert target not in str(body)
