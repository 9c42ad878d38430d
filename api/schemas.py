"""Request and response bodies as msgspec Structs: separate shapes for create, update, read.

Length limits sit on every string so bad input is rejected by validation with a 400 before
any domain code runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

FieldName = Literal["email", "phone", "name", "postal_address", "external_ref"]
Short = Annotated[str, Meta(min_length=1, max_length=100)]
Text200 = Annotated[str, Meta(min_length=1, max_length=200)]
EmailText = Annotated[str, Meta(min_length=3, max_length=320)]
PhoneText = Annotated[str, Meta(min_length=3, max_length=40)]
UUID_PATTERN = r"^[0-9a-f-]{36}$"
Uuid = Annotated[str, Meta(min_length=36, max_length=36, pattern=UUID_PATTERN)]


def uuid_path(description: str) -> Any:
    """A UUID path parameter. Litestar takes a path parameter's constraints from its
    `Parameter`, not from the `Annotated` metadata of `Uuid`, so they are repeated here (else
    any string reaches the database and the OpenAPI document shows no pattern)."""
    from litestar.params import Parameter

    return Parameter(
        description=description, min_length=36, max_length=36, pattern=UUID_PATTERN
    )


class PostalAddressIn(Struct, forbid_unknown_fields=True):
    street: Text200
    postal_code: Annotated[str, Meta(min_length=1, max_length=20)]
    city: Short
    country: Annotated[str, Meta(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")]
    addition: Text200 | None = None


class SubjectCreate(Struct, forbid_unknown_fields=True):
    """A new subject's contact data; at least one field."""

    email: EmailText | None = None
    phone: PhoneText | None = None
    name: Text200 | None = None
    postal_address: PostalAddressIn | None = None
    external_ref: Short | None = None


class SubjectCreated(Struct):
    subject_id: str


class ContactPatch(Struct, forbid_unknown_fields=True):
    """Rectification: a field given replaces the stored value; `null` removes it."""

    email: EmailText | None | UnsetType = UNSET
    phone: PhoneText | None | UnsetType = UNSET
    name: Text200 | None | UnsetType = UNSET
    postal_address: PostalAddressIn | None | UnsetType = UNSET
    external_ref: Short | None | UnsetType = UNSET


class ContactPatched(Struct):
    subject_id: str
    changed: list[str]


class EvidenceIn(Struct, forbid_unknown_fields=True):
    touchpoint: Short
    method: Short
    notice_version: Short
    language: Annotated[str, Meta(min_length=2, max_length=2)]
    notice_text_hash: Annotated[str, Meta(max_length=71)] | None = None
    explicit: bool = False
    ip: Annotated[str, Meta(max_length=64)] | None = None
    user_agent: Annotated[str, Meta(max_length=512)] | None = None


class ConsentCreate(Struct, forbid_unknown_fields=True):
    purpose: Short
    expires_at: datetime | None = None
    evidence: EvidenceIn | None = None
    reference: Text200 | None = None


class ConsentCreated(Struct):
    consent_id: str
    status: str
    expires_at: datetime | None
    basis: str


class EvidenceOut(Struct):
    touchpoint: str | None = None
    method: str | None = None
    notice_version: str | None = None
    notice_text_hash: str | None = None
    language: str | None = None
    collected_by: str | None = None


class HistoryEntry(Struct):
    at: datetime
    event: str
    status: str
    actor: str
    expires_at: datetime | None = None


class ConsentOut(Struct):
    consent_id: str
    subject_id: str
    purpose: str
    basis: str
    status: str
    reference: str | None
    created_at: datetime
    granted_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    confirm_deadline: datetime | None
    evidence: EvidenceOut
    history: list[HistoryEntry]


class ConsentList(Struct):
    items: list[ConsentOut]


class ConfirmRequest(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=100)]


ContactChannel = Literal["email", "letter", "sms", "phone"]
ContactType = Literal["service", "editorial", "commercial", "calamity"]
WordId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


class ContactIn(Struct, forbid_unknown_fields=True):
    """An outbound contact the looked-up data is for: revealing the data reserves its
    contact-pressure points. `channel` and `type` default to the purpose's; a given `channel`
    must be one of the purpose's channels, a given `type` its type; `brand` and `priority`
    come from policies/contact-pressure.toml."""

    brand: WordId
    channel: ContactChannel | None = None
    type: ContactType | None = None
    priority: WordId = "normal"
    touchpoint: Short | None = None
    #: An agreed follow-up this contact keeps (`POST /v1/followups`): inside its window
    #: it is allowed even with a full basket and costs no points; single lookups only.
    followup: Uuid | None = None


class ContactReservationOut(Struct):
    """Points reserved for the contact; `used` and `basket` are this month's totals."""

    id: str
    month: str
    points: float
    used: float
    basket: float


class ContactRecordIn(Struct, forbid_unknown_fields=True):
    """A contact made without a lookup (e.g. at the shop counter or by the call centre),
    for a `purpose` the client may use; channel and type must fit the purpose."""

    subject_id: Uuid
    brand: WordId
    channel: ContactChannel
    type: ContactType
    purpose: Short
    priority: WordId = "normal"
    touchpoint: Short | None = None
    #: An agreed follow-up this contact keeps (for its purpose); costs no points.
    followup: Uuid | None = None


class ContactRecorded(Struct):
    subject_id: str
    contact: ContactReservationOut


class LookupRequest(Struct, forbid_unknown_fields=True):
    """A purpose plus exactly one identifier; `fields` narrows what is returned;
    `contact` reserves contact-pressure points for an outbound contact."""

    purpose: Short
    subject_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    email: EmailText | None = None
    phone: PhoneText | None = None
    external_ref: Short | None = None
    fields: Annotated[list[FieldName], Meta(min_length=1, max_length=5)] | None = None
    contact: ContactIn | None = None


class BasisOut(Struct):
    id: str
    type: str
    expires_at: datetime | None


class LookupResponse(Struct, omit_defaults=True):
    subject_id: str
    purpose: str
    fields: dict[str, Any]
    basis: BasisOut
    contact: ContactReservationOut | None = None
    #: The customer's preferred channel for the contact's communication type, when the
    #: purpose allows several channels and the preferred one is among them.
    preferred_channel: ContactChannel | None = None


TimeOfDay = Annotated[
    str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, 24-hour")
]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class QuietTimesIn(Struct, forbid_unknown_fields=True):
    """Quiet times of one channel in the customer's time zone: a daily window (`start` after
    `end` spans midnight, e.g. 22:00-07:00) and/or whole weekdays."""

    start: TimeOfDay | None = None
    end: TimeOfDay | None = None
    days: Annotated[list[Weekday], Meta(max_length=7)] = msgspec.field(default_factory=list)


class PreferencesIn(Struct, forbid_unknown_fields=True):
    """The customer's contact preferences, replacing the previous ones as a whole.
    `monthly_cap_points` can only lower the company basket: a higher value is rejected."""

    timezone: Annotated[str, Meta(min_length=1, max_length=64, description="IANA time zone")]
    preferred_channels: dict[ContactType, ContactChannel] = msgspec.field(default_factory=dict)
    quiet: dict[ContactChannel, QuietTimesIn] = msgspec.field(default_factory=dict)
    monthly_cap_points: Annotated[float, Meta(ge=0, le=100000)] | None = None


class PreferencesUpdate(PreferencesIn, forbid_unknown_fields=True):
    """Preferences set by a writer client on the customer's instruction, with evidence of
    that instruction (like a consent: touchpoint from the catalogue, notice, method)."""

    evidence: EvidenceIn | None = None


class QuietTimesOut(Struct):
    start: str | None
    end: str | None
    days: list[str]


class PreferenceHistoryOut(Struct):
    version: int
    at: datetime
    actor: str
    source: str
    touchpoint: str | None
    method: str | None
    notice_version: str | None
    language: str | None
    preferences: dict[str, Any]


class PreferencesOut(Struct):
    """The customer's preferences (`version` 0 and no time zone: never set) and their
    history, newest first; `basket_points` is the company basket the own cap may lower."""

    subject_id: str
    version: int
    timezone: str | None
    preferred_channels: dict[str, str]
    quiet: dict[str, QuietTimesOut]
    monthly_cap_points: float | None
    basket_points: float
    updated_at: datetime | None
    history: list[PreferenceHistoryOut]


class ClientCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    role: Literal["writer", "lookup", "dpo", "admin"]
    purposes: Annotated[list[Short], Meta(max_length=50)] = msgspec.field(default_factory=list)


class ClientOut(Struct):
    name: str
    role: str
    purposes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ClientCreated(Struct):
    client: ClientOut
    api_key: str


class ClientList(Struct):
    items: list[ClientOut]


class Health(Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class ProblemError(Struct):
    field: str
    message: str


class Problem(Struct):
    """RFC 9457 problem details, as every error is answered."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    reason: str | None = None
    errors: list[ProblemError] | None = None


# -- self-service (privacy centre JSON API, /self/v1) -------------------------------------------

SelfRequestType = Literal[
    "access",
    "portability",
    "rectification",
    "restriction",
    "objection",
    "erasure",
    "consent_withdrawal",
]


class SelfSessionStart(Struct, forbid_unknown_fields=True):
    """Exactly one of `email` or `phone`: the address the vault knows the customer by."""

    email: EmailText | None = None
    phone: PhoneText | None = None


class SelfSessionAccepted(Struct):
    status: str
    detail: str


class SelfSessionVerify(Struct, forbid_unknown_fields=True):
    """The same address as in the start call, and the code from the mail."""

    code: Annotated[str, Meta(min_length=1, max_length=20)]
    email: EmailText | None = None
    phone: PhoneText | None = None


class SelfSessionToken(Struct):
    token: str
    token_type: str
    expires_at: datetime


class PurposeTitle(Struct):
    de: str
    en: str


class SelfContact(Struct):
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    postal_address: dict[str, str] | None = None
    external_ref: str | None = None


class SelfConsent(Struct):
    consent_id: str
    purpose: str
    title: PurposeTitle
    basis: str
    status: str
    touchpoint: str | None
    method: str | None
    given_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    withdrawable: bool


class SelfAccess(Struct):
    """One access of an internal system to the subject's data, allowed or denied: `kind`
    says what it was (`lookup`, `audience_check`: counted in a dry run, `contact_record`,
    `consents_read`, `preferences_read`, `followup_read`, `refused`: refused by role),
    `label` says it to the customer, naming the client and no value."""

    at: datetime
    client: str
    purpose: str | None
    title: PurposeTitle | None
    fields: list[str]
    decision: str
    reason: str | None
    kind: str
    label: LocalText


class SelfRequest(Struct):
    request_id: str
    type: str
    status: str
    channel: str
    received_at: datetime
    due_at: datetime
    extended_at: datetime | None = None
    extension_reason: str | None = None
    verified_at: datetime | None = None
    completed_at: datetime | None = None
    outcome_reason: str | None = None
    overdue: bool = False


class LocalText(Struct):
    de: str
    en: str


class SelfRestriction(Struct):
    """Why this session shows no contact data and may not act on the account: it was
    opened through an e-mail address whose change is not confirmed yet. `until` is when
    the cooling-off ends (null while an objection to the change stands)."""

    reason: str
    changed_at: datetime
    until: datetime | None
    message: LocalText


class SelfOverview(Struct):
    subject_id: str
    status: str
    contact: SelfContact
    consents: list[SelfConsent]
    access_log: list[SelfAccess]
    requests: list[SelfRequest]
    restriction: SelfRestriction | None = None


class IdentityTokenIn(Struct, forbid_unknown_fields=True):
    """The token from the link in the notice mailed to the previous address."""

    token: Annotated[str, Meta(min_length=1, max_length=200)]


class SelfIdentityChange(Struct):
    """The change(s) the link was about, after confirming or objecting."""

    status: str
    fields: list[str]
    changed_at: datetime
    cooling_off_until: datetime


IdentityChangeStatusName = Literal["pending", "effective", "confirmed", "objected"]


class IdentityChangeOut(Struct):
    """A change of an identifying address, for the DPO. `pending`: in its cooling-off;
    `effective`: the cooling-off passed unanswered; `objected`: the previous address said
    it was not them (see `request_id`)."""

    change_id: str
    subject_id: str
    kind: str
    status: str
    changed_at: datetime
    changed_by: str
    cooling_off_until: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    request_id: str | None


class IdentityChangeList(Struct):
    items: list[IdentityChangeOut]


class SelfRequestCreate(Struct, forbid_unknown_fields=True):
    """A request the verified subject makes. Only two types take a `payload`:
    rectification `{"changes": {"name": "…", …}}` and consent withdrawal
    `{"consent_ids": [...]}` or `{"purposes": [...]}` (none: every consent)."""

    type: SelfRequestType
    payload: dict[str, Any] | None = None


# -- data-subject requests (DPO workflow, /v1/requests) and the export -------------------------

RequestTypeName = Literal[
    "access",
    "portability",
    "rectification",
    "restriction",
    "objection",
    "erasure",
    "consent_withdrawal",
]
RequestStatusName = Literal[
    "received",
    "identity_verification",
    "in_review",
    "in_progress",
    "completed",
    "partially_completed",
    "rejected",
]
RequestChannelName = Literal["self_service", "letter", "phone", "email", "in_person"]
ReasonText = Annotated[str, Meta(min_length=1, max_length=1000)]


class RequestPayload(Struct, forbid_unknown_fields=True):
    """What the subject asked for. Rectification: `changes` (the corrected contact data;
    `null` removes a field). Consent withdrawal: `consent_ids` and/or `purposes` (neither:
    every consent). Other types take no payload. Stored sealed; never in audit or history."""

    changes: ContactPatch | UnsetType = UNSET
    consent_ids: Annotated[list[Uuid], Meta(min_length=1, max_length=100)] | UnsetType = UNSET
    purposes: Annotated[list[Short], Meta(min_length=1, max_length=50)] | UnsetType = UNSET


class RequestCreate(Struct, forbid_unknown_fields=True):
    """A request received on the subject's behalf (letter, phone, e-mail, in person)."""

    subject_id: Uuid
    type: RequestTypeName
    channel: RequestChannelName
    payload: RequestPayload | None = None


class RequestHistoryOut(Struct):
    at: datetime
    event: str
    status: str
    actor: str
    note: str | None = None


class RequestOut(Struct):
    request_id: str
    subject_id: str | None
    type: str
    status: str
    channel: str
    received_at: datetime
    due_at: datetime
    overdue: bool
    extended_at: datetime | None = None
    extension_reason: str | None = None
    verified_at: datetime | None = None
    completed_at: datetime | None = None
    outcome_reason: str | None = None
    history: list[RequestHistoryOut] = msgspec.field(default_factory=list)


class RequestList(Struct):
    """Overdue open requests first, then by due date ascending (items carry no history)."""

    items: list[RequestOut]


class RequestReason(Struct, forbid_unknown_fields=True):
    reason: ReasonText


class RequestExtend(Struct, forbid_unknown_fields=True):
    """Extend once, within the first month after receipt, by 1 or 2 months (Art. 12(3))."""

    reason: ReasonText
    months: Literal[1, 2] = 2


class RequestComplete(Struct, forbid_unknown_fields=True):
    note: ReasonText | None = None


# -- data-protection officer: audit trail, statistics, consent proof, Art. 30 record ----------


class AuditEventOut(Struct):
    """One audit event. Pseudonymous: subject ids, purposes and field names, never values."""

    seq: int
    at: datetime
    actor_type: str
    actor_id: str
    action: str
    subject_id: str | None
    purpose: str | None
    fields: list[str]
    decision: str
    reason: str | None
    consent_id: str | None
    request_id: str | None
    sealed: bool


class AuditPageOut(Struct):
    items: list[AuditEventOut]
    next_cursor: str | None = None


class AccessReadsOut(Struct):
    client: str
    purpose: str | None
    allowed: int
    denied: int
    total: int


class DenialCountOut(Struct):
    reason: str
    count: int


class AccessBucketOut(Struct):
    start: datetime
    allowed: int
    denied: int
    total: int


class AccessStatsOut(Struct):
    """Lookups (reads of contact data, allowed and denied) in [since, until)."""

    since: datetime
    until: datetime
    bucket: Literal["day", "hour"]
    total: int
    allowed: int
    denied: int
    by_client_purpose: list[AccessReadsOut]
    denials_by_reason: list[DenialCountOut]
    series: list[AccessBucketOut]


class ConsentBucketOut(Struct):
    start: datetime
    granted: int
    withdrawn: int
    expired: int


class PurposeConsentStatsOut(Struct):
    purpose: str
    granted: int
    withdrawn: int
    expired: int
    series: list[ConsentBucketOut]


class ConsentStatsOut(Struct):
    """Consents granted, withdrawn and expired per purpose and time bucket."""

    since: datetime
    until: datetime
    bucket: Literal["day", "hour"]
    purposes: list[PurposeConsentStatsOut]


class CheckpointOut(Struct):
    position: int
    seq: int
    at: datetime
    key_id: str


class ChainStatusOut(Struct):
    """Result of verifying the whole HMAC chain and every checkpoint signature."""

    ok: bool
    verified: int
    unsealed: int
    checkpoints: int
    checked_at: datetime
    last_verified_checkpoint: int | None = None
    broken_seq: int | None = None
    problem: str | None = None
    last_checkpoint: CheckpointOut | None = None


class ProofPurposeOut(Struct):
    id: str
    title: PurposeTitle
    lawful_basis: str
    double_opt_in: bool
    explicit_consent: bool
    channel: str
    data_use: str
    catalogue_version: str


class ProofEvidenceOut(Struct):
    """How the consent was given. `ip` / `user_agent` are opened from their sealed form for
    the proof (`sealed_evidence`: opened, none or shredded)."""

    sealed_evidence: Literal["opened", "none", "shredded"]
    touchpoint: str | None = None
    method: str | None = None
    notice_version: str | None = None
    notice_text_hash: str | None = None
    language: str | None = None
    collected_by: str | None = None
    ip: str | None = None
    user_agent: str | None = None


class ProofCheckpointOut(Struct):
    """The newest signed checkpoint: verify `signature` (Ed25519, base64) over
    `tresor-audit-checkpoint|v1|position|seq|head|at` with the public key."""

    position: int
    seq: int
    head: str
    at: datetime
    key_id: str
    signature: str


class ConsentProofOut(Struct):
    consent_id: str
    subject_id: str
    purpose_id: str
    basis: str
    status: str
    stored_status: str
    created_at: datetime
    subject_status: str
    evidence: ProofEvidenceOut
    history: list[HistoryEntry]
    events: list[AuditEventOut]
    generated_at: datetime
    generated_by: str
    purpose: ProofPurposeOut | None = None
    reference: str | None = None
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    withdrawn_at: datetime | None = None
    confirm_deadline: datetime | None = None
    checkpoint: ProofCheckpointOut | None = None


class RopaRecipientOut(Struct):
    client: str
    role: str


class RopaObservedRecipientOut(Struct):
    client: str
    reads: int
    last_read_at: datetime | None = None


class RopaActivityOut(Struct):
    """One processing activity (one purpose) of the Art. 30 record."""

    purpose: str
    title: PurposeTitle
    description: PurposeTitle
    lawful_basis: str
    legal_reference: str
    data_categories: list[str]
    subject_categories: list[str]
    recipients: list[RopaRecipientOut]
    observed_recipients: list[RopaObservedRecipientOut]
    retention_after_end_days: int
    channel: str
    communication_type: str
    double_opt_in: bool
    explicit_consent: bool
    data_use: str
    default_consent_days: int | None = None


class RopaMeasureOut(Struct):
    id: str
    description: PurposeTitle


class RopaOut(Struct):
    """The record of processing activities (GDPR Art. 30(1)) and the security measures."""

    catalogue_version: str
    generated_at: datetime
    activities: list[RopaActivityOut]
    security_measures: list[RopaMeasureOut]


# --- bulk resolution and the audience dry run (POST /v1/lookup/batch, /v1/lookup/dry-run) ---
#: One identifier of a batch. Loose on purpose: a malformed value is not a reason to reject
#: the whole batch, it gets its own line with reason `invalid_identifier`.
BatchIdentifier = Annotated[str, Meta(min_length=1, max_length=320)]
BatchIdentifiers = Annotated[list[BatchIdentifier], Meta(min_length=1, max_length=10_000)]


class BatchLookupRequest(Struct, forbid_unknown_fields=True):
    """A purpose plus exactly one list of identifiers (at most 10,000)."""

    purpose: Short
    subject_ids: BatchIdentifiers | None = None
    emails: BatchIdentifiers | None = None
    phones: BatchIdentifiers | None = None
    external_refs: BatchIdentifiers | None = None
    fields: Annotated[list[FieldName], Meta(min_length=1, max_length=5)] | None = None
    #: One outbound contact per identifier: each revealed line reserves its points.
    contact: ContactIn | None = None


class BatchLine(Struct, omit_defaults=True):
    """One NDJSON line: `i` is the identifier's index in the request (the identifier itself
    is never echoed). Allowed: `subject_id`, `fields`, `basis`. Denied or not found:
    `reason` and `status` (403, 404, 422). A final line with `error` (status 503, `from_i`)
    means the stream stopped there and nothing from `from_i` on was revealed."""

    i: int | None = None
    subject_id: str | None = None
    fields: dict[str, Any] | None = None
    basis: BasisOut | None = None
    contact: ContactReservationOut | None = None
    #: As in the single lookup: the customer's preferred channel for the contact's type.
    preferred_channel: ContactChannel | None = None
    reason: str | None = None
    status: int | None = None
    error: str | None = None
    detail: str | None = None
    from_i: int | None = None


class DryRunRequest(Struct, forbid_unknown_fields=True):
    """A purpose, optionally the channel it is meant for, and exactly one identifier list."""

    purpose: Short
    channel: Literal["email", "letter", "sms", "phone"] | None = None
    subject_ids: BatchIdentifiers | None = None
    emails: BatchIdentifiers | None = None
    phones: BatchIdentifiers | None = None
    external_refs: BatchIdentifiers | None = None
    #: The contact the campaign would make: the counts then include basket, calamity and
    #: the customers' own limits (rehearsed, nothing is reserved).
    contact: ContactIn | None = None


class DryRunResponse(Struct):
    """Counts for groups only: a bucket (the reachable ones, or one reason) with fewer
    members than `min_audience` is not shown; its members are counted in `suppressed`
    (`reachable` is null then)."""

    total: int
    reachable: int | None
    unreachable: dict[str, int]
    suppressed: int
    min_audience: int


class ContactBucketOut(Struct):
    key: str
    contacts: int
    points: float


class ContactReportOut(Struct):
    """Contacts of one basket month by touchpoint, phase, brand, channel and type, and how
    many customers are near (>= 80 %) or at their monthly limit. Aggregates only."""

    month: str
    basket: float
    total_contacts: int
    total_points: float
    by_touchpoint: list[ContactBucketOut]
    by_phase: list[ContactBucketOut]
    by_brand: list[ContactBucketOut]
    by_channel: list[ContactBucketOut]
    by_type: list[ContactBucketOut]
    customers_contacted: int
    customers_near_limit: int
    customers_at_limit: int
    #: Agreed follow-ups settled in the month per touchpoint where they were agreed.
    followups_by_touchpoint: list[FollowupBucketOut] = msgspec.field(default_factory=list)
    #: Customers' own contact preferences: how many state any, and the month's denials by
    #: preference reason (`contact_quiet_hours`, `contact_cap_reached`).
    preferences: PreferenceStatsOut | None = None


class PreferenceStatsOut(Struct):
    customers: int
    customers_with_preferences: int
    share: float
    denials_by_reason: dict[str, int]


FollowupNote = Literal[
    "callback_requested",
    "contract_question",
    "order_question",
    "billing_question",
    "offer_requested",
    "complaint",
    "appointment",
]
AwareDateTime = Annotated[datetime, Meta(tz=True, description="date and time with a time zone")]


class FollowupCreate(Struct, forbid_unknown_fields=True):
    """A contact the customer asked for. `channel` and `type` default to the purpose's;
    `touchpoint` is where it was agreed; `note` is a kind, never free text."""

    subject_id: Uuid
    purpose: Short
    brand: WordId
    touchpoint: Short
    due_from: AwareDateTime
    due_until: AwareDateTime
    channel: ContactChannel | None = None
    type: ContactType | None = None
    note: FollowupNote | None = None


class FollowupOut(Struct):
    """An agreed follow-up; `status` is open, kept, missed (window passed unused) or
    cancelled (by the customer)."""

    id: str
    subject_id: str
    purpose: str
    channel: str
    type: str
    brand: str
    touchpoint: str
    note: str | None
    due_from: datetime
    due_until: datetime
    status: str
    created_at: datetime
    closed_at: datetime | None


class FollowupPageOut(Struct):
    items: list[FollowupOut]
    next_cursor: str | None


class SelfFollowup(Struct):
    """One of my agreed follow-ups; `cancellable` while it is open."""

    id: str
    purpose: str
    title: PurposeTitle
    channel: str
    type: str
    touchpoint: str
    note: str | None
    due_from: datetime
    due_until: datetime
    status: str
    cancellable: bool


class SelfFollowupList(Struct):
    items: list[SelfFollowup]


class FollowupBucketOut(Struct):
    key: str
    kept: int
    missed: int
    cancelled: int
