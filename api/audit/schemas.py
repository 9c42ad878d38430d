"""Bodies of the audit area's routes: the trail, statistics, chain, consent proof and the
Art. 30 record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from msgspec import Struct

from api.bases.schemas import HistoryEntry
from api.rights.schemas import PurposeTitle


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
    brands: list[str] | None = None


class ProofCheckpointOut(Struct):
    """The newest signed checkpoint: verify `signature` (Ed25519, base64) over
    `tresor-audit-checkpoint|v1|position|seq|head|at` with the public key."""

    position: int
    seq: int
    head: str
    at: datetime
    key_id: str
    signature: str


class ProofNoticeOut(Struct):
    recipient: str
    event_type: str
    occurred_at: datetime
    status: str
    delivered_at: datetime | None
    confirmed: str | None
    confirmed_at: datetime | None
    closed_by_dpo: bool


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
    #: Recipients told about changes of this purpose and how they confirmed (Art. 19).
    recipient_notices: list[ProofNoticeOut] = msgspec.field(default_factory=list)
    excluded_fields: list[str] = msgspec.field(default_factory=list)


class RopaRecipientOut(Struct):
    client: str
    role: str


class RopaObservedRecipientOut(Struct):
    client: str
    reads: int
    last_read_at: datetime | None = None


class RopaNotifiedRecipientOut(Struct):
    name: str
    transport: str
    event_types: list[str]


class RopaTransferOut(Struct):
    """Data of the purpose going to a third country (Art. 30(1)(e)), and on what basis."""

    #: ISO 3166-1 alpha-2 code of the country outside the EEA.
    country: str
    recipient: str
    #: adequacy_decision (Art. 45), standard_contractual_clauses or binding_corporate_rules
    #: (Art. 46), derogation (Art. 49).
    safeguard: str
    safeguard_reference: str | None = None


class RopaPartyOut(Struct):
    """The controller or its data protection officer, as policies/controller.toml names them."""

    name: str
    email: str
    address: str | None = None
    representative: str | None = None


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
    #: Recipients told about changes concerning this purpose (Art. 19 GDPR).
    notified_recipients: list[RopaNotifiedRecipientOut]
    channel: str
    communication_type: str
    double_opt_in: bool
    explicit_consent: bool
    data_use: str
    default_consent_days: int | None = None
    #: Transfers of this purpose's data to third countries (Art. 30(1)(e)); empty: none.
    third_country_transfers: list[RopaTransferOut] = msgspec.field(default_factory=list)


class RopaMeasureOut(Struct):
    id: str
    description: PurposeTitle


class RopaOut(Struct):
    """The record of processing activities (GDPR Art. 30(1)) and the security measures."""

    catalogue_version: str
    generated_at: datetime
    activities: list[RopaActivityOut]
    security_measures: list[RopaMeasureOut]
    #: The controller (Art. 30(1)(a)) and its data protection officer.
    controller: RopaPartyOut
    dpo: RopaPartyOut
    controller_version: str
