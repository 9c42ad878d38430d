"""The kinds of data-subject request and the channels one arrives by, with the types' titles
the subject reads (German, English)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


class RequestType(StrEnum):
    ACCESS = "access"
    PORTABILITY = "portability"
    RECTIFICATION = "rectification"
    RESTRICTION = "restriction"
    OBJECTION = "objection"
    #: Art. 21(1): an objection, on grounds of the subject's particular situation, to
    #: processing on legitimate interests; a DPO decides whether compelling grounds override.
    LEGITIMATE_INTEREST_OBJECTION = "legitimate_interest_objection"
    ERASURE = "erasure"
    CONSENT_WITHDRAWAL = "consent_withdrawal"


class RequestChannel(StrEnum):
    SELF_SERVICE = "self_service"
    LETTER = "letter"
    PHONE = "phone"
    EMAIL = "email"
    IN_PERSON = "in_person"


#: Titles of the request types for the subject (German, English).
TYPE_TITLES: dict[str, tuple[str, str]] = {
    RequestType.ACCESS: ("Auskunft (Art. 15 DSGVO)", "access (Art. 15 GDPR)"),
    RequestType.PORTABILITY: (
        "Datenübertragbarkeit (Art. 20 DSGVO)",
        "data portability (Art. 20 GDPR)",
    ),
    RequestType.RECTIFICATION: ("Berichtigung (Art. 16 DSGVO)", "rectification (Art. 16 GDPR)"),
    RequestType.RESTRICTION: (
        "Einschränkung der Verarbeitung (Art. 18 DSGVO)",
        "restriction of processing (Art. 18 GDPR)",
    ),
    RequestType.OBJECTION: (
        "Widerspruch gegen Direktwerbung (Art. 21 DSGVO)",
        "objection to direct marketing (Art. 21 GDPR)",
    ),
    RequestType.LEGITIMATE_INTEREST_OBJECTION: (
        "Widerspruch gegen Verarbeitung aus berechtigtem Interesse (Art. 21 Abs. 1 DSGVO)",
        "objection to processing on legitimate interests (Art. 21(1) GDPR)",
    ),
    RequestType.ERASURE: ("Löschung (Art. 17 DSGVO)", "erasure (Art. 17 GDPR)"),
    RequestType.CONSENT_WITHDRAWAL: (
        "Widerruf einer Einwilligung (Art. 7 Abs. 3 DSGVO)",
        "withdrawal of consent (Art. 7(3) GDPR)",
    ),
}
