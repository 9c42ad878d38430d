"""Recipient notices are counted per recipient name on /metrics (queued, delivered,
retried, failed, lag from commit to delivery), with no subject id, URL or contact value."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY

from api.metrics import NotificationMetrics
from tests.support.dsar import DPO, contract, new_subject, plaintext_values
from tests.support.factories import api
from tests.support.receiver import Faults, serving
from tests.support.recipients import client_recipient, lookup_by, receiver
from vault.recipients.delivery import GIVE_UP, Deliverer
from vault.rights.restriction import lift_restriction, restrict


def _sample(name: str, recipient: str) -> float:
    return REGISTRY.get_sample_value(name, {"recipient": recipient}) or 0.0


async def test_notices_are_counted_per_recipient_without_ids_or_values(vault, clock):
    """Two notices to `crm-hooks` (the first answered 503 once) and one to a dead
    `old-shop` whose two fail after three days: each counter moves by exactly that, the lag
    histogram has one observation per delivery, and the exposition holds neither the
    subject id, the webhook URLs nor any contact value."""
    names = ("crm-hooks", "old-shop")
    counters = ("queued", "delivered", "retried", "failed")
    before = {
        (n, c): _sample(f"tresor_notifications_{c}_total", n) for n in names for c in counters
    }
    lag_before = _sample("tresor_notification_lag_seconds_count", "crm-hooks")
    state, app = receiver(vault, [])
    faults = Faults(fail_rate=1.0)
    async with serving(faults.wrap(app)) as base:
        url = base + "/tresor/notices"
        actor, key = await client_recipient(vault, "crm-hooks", url)
        dead, _ = await client_recipient(vault, "old-shop", "http://127.0.0.1:9/closed")
        state.keys.append(key)
        sid, data = await new_subject(vault, 77)
        await contract(vault, sid)
        await lookup_by(vault, actor, sid)
        await lookup_by(vault, dead, sid)
        await restrict(vault, DPO, sid)
        deliverer = Deliverer(vault, observer=NotificationMetrics())
        try:
            await deliverer.run()  # crm-hooks 503, old-shop refused: both retried
            faults.fail_rate = 0.0
            await lift_restriction(vault, DPO, sid)
            clock.advance(timedelta(minutes=5))
            await deliverer.run()  # crm-hooks gets both; old-shop waits on its first
            clock.advance(GIVE_UP)
            await deliverer.run()  # old-shop's two are past the window: both given up
        finally:
            await deliverer.close()

        def moved(name: str, counter: str) -> float:
            return _sample(f"tresor_notifications_{counter}_total", name) - before[name, counter]

        assert moved("crm-hooks", "queued") == 2 and moved("old-shop", "queued") == 2
        assert moved("crm-hooks", "delivered") == 2 and moved("crm-hooks", "retried") == 1
        assert moved("crm-hooks", "failed") == 0
        assert moved("old-shop", "delivered") == 0 and moved("old-shop", "failed") == 2
        assert moved("old-shop", "retried") == 2
        lag = _sample("tresor_notification_lag_seconds_count", "crm-hooks") - lag_before
        assert lag == 2
        async with api(vault) as http:
            text = (await http.get("/metrics")).text
    assert 'tresor_notifications_delivered_total{recipient="crm-hooks"}' in text
    assert 'tresor_notification_lag_seconds_bucket{le="0.05",recipient="crm-hooks"}' in text
    assert sid not in text and url not in text and "127.0.0.1:9" not in text
    assert not [v for v in plaintext_values(data) if v in text]
