"""Priorities are granted, not claimed: the grants and the dry-run minimum in
policies/contact-pressure.toml are validated at start naming the line, and a lookup or a
batch whose contact claims a priority the client was not granted is refused and audited
instead of passing a full basket. Both databases for the storage tests."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from pathlib import Path

import pytest

from tests.support.dsar import contract, new_subject, rows
from tests.support.privacy import audit_rows
from vault.access import bulk, lookup
from vault.audit.events import Actor, AuditAction
from vault.catalogue.contact_pressure import Grant, load_rules, parse_rules
from vault.catalogue.purposes import PolicyError
from vault.errors import AccessDenied
from vault.outreach.basket import ContactSpec, grant_denial, reserve
from vault.storage.outreach_tables import contacts

POLICIES = Path(__file__).resolve().parents[3] / "policies"
RULES_TEXT = (POLICIES / "contact-pressure.toml").read_text(encoding="utf-8")
SHOP = Actor("client", "shop", "req-grants-1")
DELIVERY = frozenset({"order.delivery"})


@pytest.mark.parametrize(
    ("old", "new", "message", "marker"),
    [
        (
            "dry_run_min_audience = 10",
            "dry_run_min_audience = 1",
            "dry_run_min_audience must be an integer >= 2",
            "dry_run_min_audience =",
        ),
        (
            "dry_run_min_audience = 10",
            'dry_run_min_audience = "ten"',
            "dry_run_min_audience must be an integer >= 2",
            "dry_run_min_audience =",
        ),
        (
            'granted_clients = []\ngranted_purposes = ["incident.notice"]\n\n# critical',
            'granted_clients = ["Shop Floor"]\n'
            'granted_purposes = ["incident.notice"]\n\n# critical',
            "priority 'high': granted_clients must list API client names",
            "[priority.high]",
        ),
        (
            "[priority.normal]\noverdraft_points = 0",
            '[priority.normal]\noverdraft_points = 0\ngranted_clients = ["shop"]',
            "priority 'normal' is every client's",
            "[priority.normal]",
        ),
        (
            "[calamity]\ngranted_clients = []",
            "[calamity]\ngranted_clients = []\nwho = 1",
            "[calamity] takes only granted_clients and granted_purposes",
            "[calamity]",
        ),
    ],
)
def test_bad_grants_and_minimum_stop_the_start_naming_the_line(old, new, message, marker):
    """Each broken grant or dry-run minimum is a PolicyError naming the file and line."""
    text = RULES_TEXT.replace(old, new, 1)
    assert text != RULES_TEXT
    with pytest.raises(PolicyError) as err:
        parse_rules(text, "contact-pressure.toml")
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if ln.startswith(marker))
    assert message in str(err.value)
    assert f"contact-pressure.toml: line {line}:" in str(err.value)


def test_a_granted_purpose_outside_the_catalogue_stops_the_start(tmp_path):
    """A typo in granted_purposes would silently grant nobody: load_rules refuses it."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    path = tmp_path / "policies" / "contact-pressure.toml"
    path.write_text(RULES_TEXT.replace('"incident.notice"]', '"incident.notise"]', 1), "utf-8")
    unknown = r"granted_purposes names unknown purpose\(s\) \['incident.notise'\]"
    with pytest.raises(PolicyError, match=unknown):
        load_rules(tmp_path / "policies")
    assert load_rules(POLICIES).dry_run_min_audience == 10


def test_grants_default_to_incident_notice_and_name_clients():
    """Without grant keys a priority is for incident.notice clients; a named client is
    granted `high` regardless of its purposes; normal is everyone's."""
    text = RULES_TEXT.replace(
        'granted_clients = []\ngranted_purposes = ["incident.notice"]\n\n# critical',
        "\n# critical",
        1,
    )
    rules = parse_rules(text)
    assert rules.priorities["high"].grant == Grant(frozenset(), frozenset({"incident.notice"}))
    named = dataclasses.replace(
        rules.priorities["high"], grant=Grant(frozenset({"alerts"}), frozenset())
    )
    rules = dataclasses.replace(rules, priorities={**rules.priorities, "high": named})
    check = functools.partial(grant_denial, rules)
    nothing = frozenset()
    assert check(client="alerts", client_purposes=nothing, type="service", priority="high") is None
    assert (
        check(
            client="shop",
            client_purposes=frozenset({"incident.notice"}),
            type="service",
            priority="high",
        ).reason
        == "contact_priority_not_granted"
    )
    assert check(client="shop", client_purposes=nothing, type="service", priority="normal") is None
    assert (
        check(client="shop", client_purposes=DELIVERY, type="calamity", priority="normal").reason
        == "contact_type_not_granted"
    )


def test_critical_needs_incident_notice_even_for_a_named_client():
    """`critical` passes every basket and cool-down, so naming a client in its grant is not
    enough: a client without incident.notice is refused, one with it passes."""
    rules = parse_rules(RULES_TEXT)
    named = dataclasses.replace(
        rules.priorities["critical"], grant=Grant(frozenset({"alerts"}), frozenset())
    )
    rules = dataclasses.replace(rules, priorities={**rules.priorities, "critical": named})
    check = functools.partial(grant_denial, rules, type="service", priority="critical")
    refused = check(client="alerts", client_purposes=DELIVERY)
    assert refused is not None and refused.reason == "contact_priority_not_granted"
    incident = frozenset({"incident.notice"})
    assert check(client="alerts", client_purposes=incident) is None


async def _full_basket(vault) -> str:
    """A delivery customer whose basket is full (25 of 25 points)."""
    sid, _ = await new_subject(vault, 991)
    await contract(vault, sid)
    async with vault.transaction() as conn:
        got = await reserve(
            conn,
            vault,
            subject_id=sid,
            channel="letter",
            type="commercial",
            brand="tresor",
            priority="high",
            now=vault.clock.now(),
        )
        assert got.used == 15
        got = await reserve(
            conn,
            vault,
            subject_id=sid,
            channel="email",
            type="commercial",
            brand="tresor",
            priority="normal",
            now=vault.clock.now(),
        )
        assert got.used == 25
    return sid


async def test_a_lookup_cannot_claim_a_priority_to_pass_a_full_basket(vault):
    """The attack: a lookup client allowed order.delivery claims `critical` to pass the
    customer's full basket; it is refused contact_priority_not_granted, audited, and
    neither data nor points leave."""
    sid = await _full_basket(vault)
    with pytest.raises(AccessDenied) as err:
        await lookup.lookup(
            vault,
            SHOP,
            DELIVERY,
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifier=sid,
            contact=ContactSpec(brand="tresor", priority="critical"),
        )
    assert err.value.reason == "contact_priority_not_granted"
    assert len(await rows(vault, contacts)) == 2
    (event,) = [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]
    assert (event["decision"], event["reason"], event["subject_id"]) == (
        "deny",
        "contact_priority_not_granted",
        sid,
    )
    assert json.loads(event["detail"])["contact"]["priority"] == "critical"


async def test_a_batch_cannot_claim_a_priority_either(vault):
    """The same claim in a batch is refused for the whole batch, one event per line."""
    sid = await _full_basket(vault)
    with pytest.raises(AccessDenied) as err:
        async for _ in bulk.resolve_batch(
            vault,
            SHOP,
            DELIVERY,
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifiers=[sid, sid],
            contact=ContactSpec(brand="tresor", priority="high"),
        ):
            pass
    assert err.value.reason == "contact_priority_not_granted"
    events = [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]
    assert [(e["reason"], e["subject_id"]) for e in events] == [
        ("contact_priority_not_granted", sid)
    ] * 2
    assert len(await rows(vault, contacts)) == 2
