"""The query-set-overlap control: a campaign's audience is near another's when they differ
by 1 to k - 1 members, whatever the order of upload; identical audiences and audiences
whose sizes differ by k or more are not. Both databases."""

from __future__ import annotations

from tests.support.factories import WRITER, person
from tests.vault.campaigns.test_booking import _campaign
from vault.campaigns.audience import near_audience
from vault.subjects.store import create_subject

K = 10


async def _subjects(vault, n: int) -> list[str]:
    return [await create_subject(vault, WRITER, person(700 + i)) for i in range(n)]


async def _near(vault, *campaign_ids: str) -> list[bool]:
    async with vault.engine.connect() as conn:
        return [await near_audience(conn, c, K) for c in campaign_ids]


async def test_identical_and_distant_audiences_are_not_near_one_member_less_than_k_is(vault):
    """A = 20 members; B the same 20: not near; C = 10 of them (10 apart, sizes differ by
    k): not near; then D = A plus 9 others: A and D are near, C is still not."""
    s = await _subjects(vault, 29)
    a = await _campaign(vault, "A", 1, s[:20])
    b = await _campaign(vault, "B", 2, s[:20])
    c = await _campaign(vault, "C", 3, s[:10])
    assert await _near(vault, a, b, c) == [False, False, False]
    d = await _campaign(vault, "D", 4, s[:29])
    assert await _near(vault, a, b, c, d) == [True, True, False, True]


async def test_audiences_of_one_size_that_swap_a_member_are_near(vault):
    """A = members 0-19, B = members 1-20: the same size, 2 apart: both near, so neither
    forecast tells member 0 from member 20."""
    s = await _subjects(vault, 21)
    a = await _campaign(vault, "A", 1, s[:20])
    b = await _campaign(vault, "B", 2, s[1:21])
    assert await _near(vault, a, b) == [True, True]
