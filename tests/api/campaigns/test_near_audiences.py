"""An attacker with a `marketing` key tries to learn one customer's status from two
campaigns whose uploaded audiences differ by that customer alone (issue 21, item 5): it
subtracts the two forecasts, the two booking previews and the two calendar entries. With
the query-set-overlap control every count of at least k is hidden, with a reason the pages
explain in German and English; with the control switched off the same attack recovers the
customer (the test would notice a missing control). Both databases."""

from __future__ import annotations

import re

import pytest

from tests.api.dpo.test_marketer_console import sign_in
from tests.support.factories import WRITER, api, bearer, client_key, person
from tests.vault.campaigns.test_booking import EXPLICIT, _campaign, _customers
from vault.bases.consents import record_basis
from vault.campaigns import forecast
from vault.subjects.store import create_subject

K = 10
#: The counts of the three answers that sort the audience (the audience itself is the
#: upload's size, which the CRM chose and which tells no customer's status).
COUNTS = (
    "reachable", "blocked_by_basket", "blocked_by_preferences", "blocked_by_quiet_hours",
    "missing_basis", "booked",
)  # fmt: skip


async def _population(vault) -> tuple[str, str]:
    """40 customers with a basis for SMS offers, 30 without, and the target with one; list
    A holds the 70, list B the 70 and the target."""
    crowd = await _customers(vault, 40)
    crowd += [await create_subject(vault, WRITER, person(300 + i)) for i in range(30)]
    target = await create_subject(vault, WRITER, person(650))
    await record_basis(vault, WRITER, target, "offers.sms", evidence=EXPLICIT)
    return await _campaign(vault, "A", 1, crowd), await _campaign(vault, "B", 2, [*crowd, target])


async def _answers(vault, a: str, b: str) -> list[tuple[dict, dict]]:
    """Pairs of the same answer for A and for B: forecast, booking preview, calendar."""
    key = await client_key(vault, "planner", "marketing")
    pairs = []
    async with api(vault) as http:
        for path, method in (("forecast", "get"), ("booking-preview", "post")):
            got = [
                (await getattr(http, method)(f"/v1/campaigns/{c}/{path}", headers=bearer(key)))
                for c in (a, b)
            ]
            assert all(r.status_code == 200 for r in got), [r.text for r in got]
            pairs.append((got[0].json(), got[1].json()))
        r = await http.get("/v1/campaigns/calendar", headers=bearer(key))
        assert r.status_code == 200, r.text
        entries = {c["id"]: c for c in r.json()["campaigns"]}
        pairs.append((entries[a], entries[b]))
    return pairs


def _differences(pairs: list[tuple[dict, dict]]) -> list[tuple[str, int]]:
    """Every count shown as a number in both answers of a pair that differs by 1 to k - 1:
    the status of the few customers only one audience holds."""
    found = []
    for one, other in pairs:
        for name in COUNTS:
            mine, theirs = one.get(name), other.get(name)
            if isinstance(mine, int) and isinstance(theirs, int) and 0 < abs(mine - theirs) < K:
                found.append((name, theirs - mine))
    return found


async def test_two_lists_one_customer_apart_hide_every_count_and_the_pages_say_why(vault):
    """Forecast, preview and calendar of A and B: no count differs by 1 to 9 (none of at
    least k is a number at all), each answer names `near_audience`, and the campaign plan
    and calendar pages explain it in both languages."""
    a, b = await _population(vault)
    pairs = await _answers(vault, a, b)
    assert _differences(pairs) == []
    for one, other in pairs:
        assert one["hidden_reason"] == other["hidden_reason"] == "near_audience", (one, other)
        counts = [answer[n] for answer in (one, other) for n in COUNTS if n in answer]
        assert counts and not any(isinstance(v, int) for v in counts), (one, other)
    planner = await client_key(vault, "planner2", "marketing")
    async with api(vault) as http:
        r = await sign_in(http, planner)
        assert r.status_code in (302, 303), r.text
        pages = {lang: [(await http.get(f"/dpo/{page}?lang={lang}")).text
                        for page in ("campaigns", "calendar")]
                 for lang in ("de", "en")}  # fmt: skip
    for text in pages["en"]:
        assert "differs from another campaign&#39;s by fewer than 10 people" in text
        assert len(re.findall(r'class="near-audience"', text)) >= 2  # noqa: PLR2004
    for text in pages["de"]:
        assert "unterscheidet sich von der einer anderen Kampagne um weniger als 10" in text


async def test_without_the_control_subtracting_the_two_forecasts_finds_the_customer(
    vault, monkeypatch: pytest.MonkeyPatch
):
    """The same attack with the overlap control switched off: B's reachable count is A's
    plus one, in the forecast, the preview and the calendar: the target is reachable. So
    the test above fails if the control goes missing."""
    a, b = await _population(vault)

    async def never_near(conn, campaign_id, k) -> bool:
        return False

    monkeypatch.setattr(forecast, "near_audience", never_near)
    found = _differences(await _answers(vault, a, b))
    assert ("reachable", 1) in found and ("booked", 1) in found, found
