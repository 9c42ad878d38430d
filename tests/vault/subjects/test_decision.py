"""The pure purpose check: every deny reason, the expiry instant, supersession, and a property."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.catalogue.purposes import LawfulBasis, load_catalogue
from vault.subjects.decision import (
    Allow,
    BasisFacts,
    BasisStatus,
    Deny,
    DenyReason,
    check_contact,
    check_request,
    decide,
    effective_status,
)

CATALOGUE = load_catalogue(Path(__file__).resolve().parents[3] / "policies")
NEWSLETTER = CATALOGUE.purposes["newsletter.email"]
OFFERS_SMS = CATALOGUE.purposes["offers.sms"]
DELIVERY = CATALOGUE.purposes["order.delivery"]
INVOICE = CATALOGUE.purposes["invoice.postal"]
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ALL = frozenset(CATALOGUE.purposes)


def facts(
    status: str,
    *,
    basis: str = "consent",
    expires_at: datetime | None = None,
    confirm_deadline: datetime | None = None,
    id: str = "b1",
) -> BasisFacts:
    return BasisFacts(
        id=id, basis=basis, status=status, expires_at=expires_at, confirm_deadline=confirm_deadline
    )


def reason(outcome: Allow | Deny) -> DenyReason:
    assert isinstance(outcome, Deny), outcome
    return outcome.reason


# --- check_request: the checks that need no subject -------------------------------------


def test_unknown_purpose_is_denied():
    """A purpose missing from the catalogue is denied as unknown_purpose, whatever the client
    holds."""
    assert check_request(None, "made.up", ALL | {"made.up"}, None) == Deny(
        DenyReason.UNKNOWN_PURPOSE
    )


def test_purpose_the_client_may_not_use_is_denied():
    """A catalogued purpose outside the client's allowed purposes is purpose_not_allowed."""
    out = check_request(NEWSLETTER, "newsletter.email", frozenset({"order.delivery"}), None)
    assert out == Deny(DenyReason.PURPOSE_NOT_ALLOWED)


def test_field_outside_the_purpose_is_denied():
    """Asking for a field the purpose does not reveal is field_not_covered, even mixed with covered
    ones."""
    out = check_request(NEWSLETTER, "newsletter.email", ALL, ["email", "phone"])
    assert out == Deny(DenyReason.FIELD_NOT_COVERED)


def test_no_fields_named_means_all_purpose_fields():
    """Without a field list the purpose's own fields are requested."""
    assert check_request(DELIVERY, "order.delivery", ALL, None) == DELIVERY.fields


def test_named_fields_are_narrowed_and_deduplicated_in_order():
    """A field list narrows the read to those fields, duplicates dropped, order kept."""
    out = check_request(DELIVERY, "order.delivery", ALL, ["phone", "name", "phone"])
    assert out == ("phone", "name")


# --- decide: one subject's bases -------------------------------------------------------


def test_granted_consent_allows_with_that_basis():
    """A granted, unexpired consent allows the requested fields and names itself as the basis."""
    basis = facts("granted", expires_at=NOW + timedelta(days=1))
    out = decide(NEWSLETTER, ("email",), "active", [basis], NOW)
    assert out == Allow(fields=("email",), basis=basis)


def test_erased_subject_is_denied_even_with_a_basis():
    """An erased subject is subject_erased, whatever bases remain."""
    out = decide(DELIVERY, DELIVERY.fields, "erased", [facts("active", basis="contract")], NOW)
    assert reason(out) is DenyReason.SUBJECT_ERASED


def test_restricted_subject_is_denied_for_consent_and_contract_purposes():
    """Restriction of processing (Art. 18) blocks consent and contract purposes."""
    consent = facts("granted", expires_at=NOW + timedelta(days=1))
    assert reason(decide(NEWSLETTER, ("email",), "restricted", [consent], NOW)) is (
        DenyReason.SUBJECT_RESTRICTED
    )
    contract = facts("active", basis="contract")
    assert reason(decide(DELIVERY, ("name",), "restricted", [contract], NOW)) is (
        DenyReason.SUBJECT_RESTRICTED
    )


def test_restricted_subject_is_still_allowed_for_a_legal_obligation():
    """A legal-obligation purpose (invoice.postal) still reads a restricted subject's data."""
    assert INVOICE.lawful_basis is LawfulBasis.LEGAL_OBLIGATION
    basis = facts("active", basis="legal_obligation")
    out = decide(INVOICE, INVOICE.fields, "restricted", [basis], NOW)
    assert isinstance(out, Allow) and out.basis == basis


def test_unknown_subject_status_is_denied():
    """A subject status the decision does not know is denied (default deny), not allowed."""
    basis = facts("granted", expires_at=NOW + timedelta(days=1))
    assert reason(decide(NEWSLETTER, ("email",), "frozen", [basis], NOW)) is (
        DenyReason.SUBJECT_RESTRICTED
    )


def test_no_basis_at_all_is_no_consent():
    """A subject without any record for the purpose is no_consent."""
    assert reason(decide(NEWSLETTER, ("email",), "active", [], NOW)) is DenyReason.NO_CONSENT


def test_pending_confirmation_is_unconfirmed():
    """A double opt-in consent awaiting its confirmation is consent_unconfirmed."""
    basis = facts("pending_confirmation", confirm_deadline=NOW + timedelta(hours=1))
    assert reason(decide(NEWSLETTER, ("email",), "active", [basis], NOW)) is (
        DenyReason.CONSENT_UNCONFIRMED
    )


def test_lapsed_confirmation_is_unconfirmed():
    """A pending consent whose confirmation deadline passed is lapsed and still
    consent_unconfirmed."""
    basis = facts("pending_confirmation", confirm_deadline=NOW)
    assert effective_status(basis, NOW) is BasisStatus.LAPSED
    assert reason(decide(NEWSLETTER, ("email",), "active", [basis], NOW)) is (
        DenyReason.CONSENT_UNCONFIRMED
    )


def test_consent_expires_exactly_at_its_expiry_instant():
    """At the expiry instant the consent is expired; one microsecond earlier it still allows."""
    basis = facts("granted", expires_at=NOW)
    assert effective_status(basis, NOW) is BasisStatus.EXPIRED
    assert reason(decide(NEWSLETTER, ("email",), "active", [basis], NOW)) is (
        DenyReason.CONSENT_EXPIRED
    )
    just_before = NOW - timedelta(microseconds=1)
    assert isinstance(decide(NEWSLETTER, ("email",), "active", [basis], just_before), Allow)


def test_naive_expiry_from_sqlite_is_read_as_utc():
    """A naive expiry (as SQLite returns it) is compared as UTC, not local time."""
    basis = facts("granted", expires_at=NOW.replace(tzinfo=None))
    assert effective_status(basis, NOW) is BasisStatus.EXPIRED
    assert effective_status(basis, NOW - timedelta(microseconds=1)) is BasisStatus.GRANTED


def test_withdrawn_consent_is_denied():
    """A withdrawn consent is consent_withdrawn."""
    basis = facts("withdrawn", expires_at=NOW + timedelta(days=1))
    assert reason(decide(NEWSLETTER, ("email",), "active", [basis], NOW)) is (
        DenyReason.CONSENT_WITHDRAWN
    )


def test_ended_contract_is_basis_ended():
    """A contract basis that ended is basis_ended."""
    basis = facts("ended", basis="contract")
    assert reason(decide(DELIVERY, ("name",), "active", [basis], NOW)) is DenyReason.BASIS_ENDED


def test_active_contract_past_its_end_date_is_expired():
    """A contract basis with an end date stops allowing at that date."""
    basis = facts("active", basis="contract", expires_at=NOW)
    assert reason(decide(DELIVERY, ("name",), "active", [basis], NOW)) is (
        DenyReason.CONSENT_EXPIRED
    )


def test_superseded_records_are_skipped():
    """Superseded records neither allow nor give the reason: the next record decides."""
    superseded = facts("superseded", id="old", expires_at=NOW + timedelta(days=1))
    withdrawn = facts("withdrawn", id="new")
    assert reason(decide(NEWSLETTER, ("email",), "active", [superseded, withdrawn], NOW)) is (
        DenyReason.CONSENT_WITHDRAWN
    )
    assert reason(decide(NEWSLETTER, ("email",), "active", [superseded], NOW)) is (
        DenyReason.NO_CONSENT
    )


def test_newest_record_gives_the_reason():
    """With several dead records the newest one's reason wins."""
    withdrawn = facts("withdrawn", id="new")
    expired = facts("granted", id="old", expires_at=NOW - timedelta(days=1))
    assert reason(decide(NEWSLETTER, ("email",), "active", [withdrawn, expired], NOW)) is (
        DenyReason.CONSENT_WITHDRAWN
    )
    assert reason(decide(NEWSLETTER, ("email",), "active", [expired, withdrawn], NOW)) is (
        DenyReason.CONSENT_EXPIRED
    )


def test_a_live_record_behind_dead_ones_still_allows():
    """Any live record allows, even behind newer dead ones, and it is the basis named."""
    live = facts("granted", id="live", expires_at=NOW + timedelta(days=1))
    out = decide(NEWSLETTER, ("email",), "active", [facts("withdrawn", id="new"), live], NOW)
    assert isinstance(out, Allow) and out.basis.id == "live"


def test_basis_of_another_type_does_not_count():
    """A consent record under a contract purpose (or vice versa) is ignored: no_consent."""
    consent = facts("granted", basis="consent", expires_at=NOW + timedelta(days=1))
    assert reason(decide(DELIVERY, ("name",), "active", [consent], NOW)) is DenyReason.NO_CONSENT
    contract = facts("active", basis="contract")
    assert reason(decide(OFFERS_SMS, ("phone",), "active", [contract], NOW)) is (
        DenyReason.NO_CONSENT
    )


# --- property: allow iff some record is live at `now` ----------------------------------

_STORED = [s.value for s in BasisStatus if s not in (BasisStatus.EXPIRED, BasisStatus.LAPSED)]
_offsets = st.one_of(
    st.none(),
    st.integers(min_value=-3, max_value=3),  # around the instant, in microseconds
    st.integers(min_value=-(10**12), max_value=10**12),
)


@st.composite
def _basis_facts(draw: st.DrawFn) -> BasisFacts:
    def at(offset: int | None) -> datetime | None:
        if offset is None:
            return None
        value = NOW + timedelta(microseconds=offset)
        return value.replace(tzinfo=None) if draw(st.booleans()) else value

    return BasisFacts(
        id=draw(st.uuids()).hex,
        basis=draw(st.sampled_from(["consent", "consent", "contract"])),
        status=draw(st.sampled_from(_STORED)),
        expires_at=at(draw(_offsets)),
        confirm_deadline=at(draw(_offsets)),
    )


def _live(b: BasisFacts) -> bool:
    if b.basis != "consent" or b.status not in ("granted", "active"):
        return False
    if b.expires_at is None:
        return True
    exp = b.expires_at if b.expires_at.tzinfo else b.expires_at.replace(tzinfo=UTC)
    return NOW < exp


@settings(max_examples=300, deadline=None)
@given(st.lists(_basis_facts(), max_size=6))
def test_decide_allows_iff_some_record_is_live(bases: list[BasisFacts]):
    """For any basis history, decide allows exactly when some matching record is granted/active and
    unexpired, and names the first such."""
    out = decide(NEWSLETTER, ("email",), "active", bases, NOW)
    live = [b for b in bases if _live(b)]
    if live:
        assert isinstance(out, Allow) and out.basis == live[0]
    else:
        assert isinstance(out, Deny)
        assert out.reason in {
            DenyReason.NO_CONSENT,
            DenyReason.CONSENT_UNCONFIRMED,
            DenyReason.CONSENT_EXPIRED,
            DenyReason.CONSENT_WITHDRAWN,
            DenyReason.BASIS_ENDED,
        }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending_confirmation", DenyReason.CONSENT_UNCONFIRMED),
        ("withdrawn", DenyReason.CONSENT_WITHDRAWN),
        ("ended", DenyReason.BASIS_ENDED),
    ],
)
def test_each_dead_status_maps_to_its_reason(status: str, expected: DenyReason):
    """Each stored dead status maps to its own reason code."""
    assert reason(decide(NEWSLETTER, ("email",), "active", [facts(status)], NOW)) is expected


def test_check_contact_requires_a_contact_for_marketing_and_scopes_brands():
    """Editorial and commercial reads without a contact are contact_required (a dry run,
    which reveals nothing, is not); a service read is not; a purpose's `brands` refuse
    another brand's contact brand_not_covered; an earlier denial stands."""
    fields = NEWSLETTER.fields
    assert check_contact(NEWSLETTER, None, fields) == Deny(DenyReason.CONTACT_REQUIRED)
    assert check_contact(OFFERS_SMS, None, fields) == Deny(DenyReason.CONTACT_REQUIRED)
    assert check_contact(OFFERS_SMS, None, fields, reveals=False) == fields
    assert check_contact(DELIVERY, None, fields) == fields
    assert check_contact(OFFERS_SMS, "tresor_finance", fields) == fields
    scoped = dataclasses.replace(OFFERS_SMS, brands=("tresor",))
    assert check_contact(scoped, "tresor_finance", fields) == Deny(DenyReason.BRAND_NOT_COVERED)
    assert check_contact(scoped, "tresor", fields) == fields
    earlier = Deny(DenyReason.PURPOSE_NOT_ALLOWED)
    assert check_contact(scoped, None, earlier) is earlier
