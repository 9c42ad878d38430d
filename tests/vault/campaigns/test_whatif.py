"""The what-if replay on both databases: a month's recorded contacts replayed in order under
the rules in force and under changed points, reserve and overdraft, with the allowed and
blocked counts per brand and type derived from the seed."""

from __future__ import annotations

import pytest

from tests.vault.campaigns.test_reports import (
    MARKETER,
    MONTH,
    report_reads,
    seed_contacts,
    seed_subjects,
)
from vault.campaigns import whatif
from vault.errors import InvalidInput


async def _seed(vault):
    """12 customers with two commercial e-mails (10 points each), 11 with one service SMS
    (2 x 2 = 4 points, from the 10-point reserve), 10 with three high-priority commercial
    e-mails (30 points: within 25 + 10 overdraft), and inbound calls that cost nothing."""
    two = await seed_subjects(vault, 12)
    service = await seed_subjects(vault, 11)
    high = await seed_subjects(vault, 10)
    await seed_contacts(vault, two, n=2)
    await seed_contacts(vault, service, brand="tresor_outlet", type="service", channel="sms",
                        points=40)  # fmt: skip
    await seed_contacts(vault, high, priority="high", n=3)
    await seed_contacts(vault, two, direction="inbound", channel="phone", points=0)
    return two, service, high


def _cells(result):
    return {(c.brand, c.type): (c.now_allowed, c.now_blocked, c.whatif_allowed,
                                c.whatif_blocked) for c in result.cells}  # fmt: skip


async def test_the_replay_counts_allowed_and_blocked_now_and_under_changed_rules(vault):
    """Commercial at 15 points blocks every second e-mail (30 > 25); a 3-point service
    reserve blocks every service SMS (4 > 3); an overdraft of 0 for `high` blocks every
    third high-priority e-mail. Today's rules allow all of them; inbound is not replayed."""
    two, service, high = await _seed(vault)
    changes = whatif.RuleChanges(
        points={"commercial": 15}, service_reserve_points=3, overdraft_points={"high": 0}
    )
    result = await whatif.what_if(vault, MARKETER, MONTH, changes)
    assert result.contacts == 2 * len(two) + len(service) + 3 * len(high)
    assert _cells(result) == {
        ("tresor", "commercial"): (
            2 * len(two) + 3 * len(high), 0,
            len(two) + len(high), len(two) + 2 * len(high),
        ),
        ("tresor_outlet", "service"): (len(service), 0, 0, len(service)),
    }  # fmt: skip
    assert len(await report_reads(vault)) == 1


async def test_a_smaller_basket_blocks_and_a_bigger_one_lets_through(vault):
    """Basket 15 points: the second commercial e-mail (20) is blocked for the normal-priority
    customers, and the high-priority ones pass two (20 <= 15 + 10) but not the third."""
    two, _service, high = await _seed(vault)
    result = await whatif.what_if(vault, MARKETER, MONTH, whatif.RuleChanges(basket_points=15))
    now_allowed, _, allowed, blocked = _cells(result)[("tresor", "commercial")]
    assert now_allowed == 2 * len(two) + 3 * len(high)
    assert (allowed, blocked) == (len(two) + 2 * len(high), len(two) + len(high))


async def test_changes_the_rules_do_not_know_are_refused_by_pointer(vault):
    """Unknown types, channels and priorities and out-of-range values are each named by
    JSON pointer; nothing is replayed or audited."""
    bad = whatif.RuleChanges(
        points={"gossip": 1, "commercial": 5000}, channel_factors={"pigeon": 1.0},
        overdraft_points={"urgent": 1}, basket_points=1001,
    )  # fmt: skip
    with pytest.raises(InvalidInput) as exc:
        await whatif.what_if(vault, MARKETER, MONTH, bad)
    assert set(exc.value.errors) == {
        "/rules/points/gossip", "/rules/points/commercial", "/rules/channel_factors/pigeon",
        "/rules/overdraft_points/urgent", "/rules/basket_points",
    }  # fmt: skip
    assert await report_reads(vault) == []
