"""Consents and the other lawful bases: record, confirm (double opt-in), withdraw, list.

Every change appends to `consent_history` and writes an audit event in the same
transaction. Consent evidence is kept as proof (GDPR Art. 7(1)); the IP address and user
agent of a grant are personal data and stored only sealed under the subject's DEK.

So is the free text of a record: a basis's `reference` (a contract number, an order: what
the client typed) and a consent's `notice_version`. They are sealed under the subject's DEK,
bound to (subject, column, consent id), so they are unreadable after the erasure destroys
the key (which also clears them). Rows written before migration 0013 hold them in plaintext
until the retention sweep seals them (`seal_legacy_texts`); `open_texts` reads both forms.

By concern: what a record is and its history (`records`), recording one (`recording`),
double opt-in (`confirmation`), withdrawal (`withdrawal`), reading (`listing`) and the
sealed texts and evidence (`sealed`). Callers import from here; the helpers the modules
share (e.g. `records.add_history`) are the package's own.
"""

from vault.bases.consents.confirmation import (
    confirm,
    confirmation_link,
    confirmation_mail,
    peek_confirmation,
)
from vault.bases.consents.listing import get_basis, list_bases
from vault.bases.consents.recording import record_basis
from vault.bases.consents.records import COLLECTION_METHODS, LANGUAGES, BasisRecord, Evidence
from vault.bases.consents.sealed import (
    SEALED_TEXTS,
    evidence_secrets,
    open_texts,
    seal_legacy_texts,
    sealed_texts,
)
from vault.bases.consents.withdrawal import withdraw

__all__ = [
    "COLLECTION_METHODS",
    "LANGUAGES",
    "SEALED_TEXTS",
    "BasisRecord",
    "Evidence",
    "confirm",
    "confirmation_link",
    "confirmation_mail",
    "evidence_secrets",
    "get_basis",
    "list_bases",
    "open_texts",
    "peek_confirmation",
    "record_basis",
    "seal_legacy_texts",
    "sealed_texts",
    "withdraw",
]
