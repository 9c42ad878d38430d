"""The record of processing activities (GDPR Art. 30(1)), generated, never hand-kept.

The controller and its data protection officer (Art. 30(1)(a), from
`policies/controller.toml`), then one processing activity per purpose of the catalogue: its
names, lawful basis, categories of data and of data subjects, recipients (the internal
systems allowed to read it, and those the audit trail shows actually reading it), transfers
to third countries with their safeguards (Art. 30(1)(e), controller.toml), retention, and
the technical and organisational security measures (Art. 32) that protect every purpose
alike. Generated from
the purpose catalogue, the clients table and the audit trail, so it cannot drift from what
the vault enforces. Reading it is audited (`dpo:ropa:read`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.catalogue.controller import Party, Transfer
from vault.catalogue.purposes import LawfulBasis, Purpose
from vault.clock import as_utc
from vault.storage.audit_tables import audit_events
from vault.storage.recipient_tables import recipient_subscriptions, recipients
from vault.storage.tables import clients

if TYPE_CHECKING:
    from vault.context import VaultContext

ARTICLE = {
    LawfulBasis.CONSENT: "Art. 6(1)(a) GDPR",
    LawfulBasis.CONTRACT: "Art. 6(1)(b) GDPR",
    LawfulBasis.LEGAL_OBLIGATION: "Art. 6(1)(c) GDPR",
    LawfulBasis.LEGITIMATE_INTEREST: "Art. 6(1)(f) GDPR",
}

SUBJECT_CATEGORIES = (
    ("customers", "Kundinnen und Kunden (auch Interessenten)", "customers (and prospects)"),
)


@dataclass(frozen=True, slots=True)
class Measure:
    id: str
    de: str
    en: str


SECURITY_MEASURES: tuple[Measure, ...] = (
    Measure(
        "field_encryption",
        "Jedes Kontaktfeld ist mit AES-256-GCM unter einem eigenen Schlüssel je Person "
        "verschlüsselt (Envelope-Verschlüsselung); die Zusatzdaten binden den Chiffretext an "
        "Person, Feld und Schlüsselversion.",
        "Every contact field is encrypted with AES-256-GCM under a per-subject data key "
        "(envelope encryption); associated data binds each ciphertext to subject, field and "
        "key version.",
    ),
    Measure(
        "key_management",
        "Die Personenschlüssel sind mit einem versionierten Schlüssel aus dem Schlüsselbund "
        "(Datei mit Modus 0600 oder HSM über PKCS#11) verpackt und werden online rotiert.",
        "Subject keys are wrapped by a versioned key-encryption key from the keyring (file "
        "with mode 0600, or an HSM via PKCS#11) and rotated online.",
    ),
    Measure(
        "crypto_shredding",
        "Löschen vernichtet den Personenschlüssel (Crypto-Shredding): Kopien in Sicherungen "
        "sind danach nicht mehr lesbar. Gesetzlich aufzubewahrende Felder haben einen eigenen "
        "Schlüssel und werden nach Fristende ebenso vernichtet.",
        "Erasure destroys the subject's key (crypto-shredding), so copies in backups can no "
        "longer be read. Fields kept under a legal obligation have a key of their own and are "
        "shredded in turn when their retention ends.",
    ),
    Measure(
        "blind_index",
        "Suche nach E-Mail, Telefon oder Kundennummer nur über einen Blind-Index "
        "(HMAC-SHA256 mit eigenem Schlüssel) – ohne Klartext in der Datenbank.",
        "Searching by e-mail, phone or customer number uses a blind index (HMAC-SHA256 under "
        "a separate key), never plaintext in the database.",
    ),
    Measure(
        "purpose_binding",
        "Jeder Lesezugriff nennt einen Zweck; herausgegeben werden nur die Felder, die der "
        "Zweck erlaubt und die Rechtsgrundlage der Person deckt (Standard: verweigern).",
        "Every read names a purpose and returns only the fields the purpose allows and the "
        "subject's lawful basis covers (default deny).",
    ),
    Measure(
        "api_keys_and_roles",
        "Interne Systeme melden sich mit API-Schlüsseln hoher Entropie an (gespeichert nur als "
        "HMAC-SHA256, Vergleich in konstanter Zeit); Rollen writer, lookup, dpo, admin und "
        "marketing trennen die Befugnisse, Lesezugriffe sind auf erlaubte Zwecke je System "
        "beschränkt.",
        "Internal systems authenticate with high-entropy API keys (stored only as HMAC-SHA256, "
        "compared in constant time); the roles writer, lookup, dpo, admin and marketing "
        "separate duties, and reads are limited to each system's allowed purposes.",
    ),
    Measure(
        "audit_trail",
        "Jeder Zugriff, erlaubt oder verweigert, wird in derselben Transaktion protokolliert; "
        "ohne Protokolleintrag werden keine Daten herausgegeben (fail closed). Auch Zugriffe "
        "der bzw. des Datenschutzbeauftragten werden protokolliert.",
        "Every access, allowed or denied, is audited in the same transaction; without its audit "
        "event no data is returned (fail closed). The DPO's own reads are audited too.",
    ),
    Measure(
        "tamper_evidence",
        "Das Protokoll ist mit HMAC-SHA256 verkettet und durch Ed25519-signierte Prüfpunkte "
        "gesichert; `tresor audit verify` findet jede Änderung, Löschung, Einfügung oder "
        "Kürzung und nennt die Sequenznummer.",
        "The audit trail is chained with HMAC-SHA256 and secured by Ed25519-signed "
        "checkpoints; `tresor audit verify` detects any edit, deletion, insertion or truncation "
        "and names its sequence number.",
    ),
    Measure(
        "no_pii_in_logs",
        "Klartext-Kontaktdaten erscheinen nie in Logs, Protokolleinträgen, Fehlermeldungen, "
        "URLs oder Metriken.",
        "Plaintext contact data never reaches logs, audit events, error messages, URLs or metrics.",
    ),
    Measure(
        "consent_proof",
        "Einwilligungen werden mit Nachweis (Kontaktpunkt, Verfahren, Textversion; IP-Adresse "
        "und User-Agent verschlüsselt) und lückenloser Historie gespeichert; E-Mail-Werbung "
        "nur nach Double-Opt-in.",
        "Consents are stored with evidence (touchpoint, method, notice version; IP address and "
        "user agent encrypted) and a complete history; e-mail marketing only after double "
        "opt-in.",
    ),
)


@dataclass(frozen=True, slots=True)
class Recipient:
    client: str
    role: str


@dataclass(frozen=True, slots=True)
class ObservedRecipient:
    client: str
    reads: int
    last_read_at: datetime | None


@dataclass(frozen=True, slots=True)
class NotifiedRecipient:
    """A registered recipient told about changes concerning this purpose (Art. 19)."""

    name: str
    transport: str
    event_types: list[str]


@dataclass(frozen=True, slots=True)
class Activity:
    purpose: str
    title_de: str
    title_en: str
    description_de: str
    description_en: str
    lawful_basis: str
    legal_reference: str
    data_categories: list[str]
    subject_categories: list[str]
    recipients: list[Recipient]
    observed_recipients: list[ObservedRecipient]
    retention_after_end_days: int
    notified_recipients: list[NotifiedRecipient]
    default_consent_days: int | None
    channel: str
    communication_type: str
    double_opt_in: bool
    explicit_consent: bool
    data_use: str
    third_country_transfers: list[Transfer]


@dataclass(frozen=True, slots=True)
class Ropa:
    catalogue_version: str
    generated_at: datetime
    activities: list[Activity]
    security_measures: tuple[Measure, ...]
    controller: Party
    dpo: Party
    controller_version: str


def _activity(
    p: Purpose,
    configured: dict[str, list[Recipient]],
    observed: dict[str, list[ObservedRecipient]],
    notified: dict[str, list[NotifiedRecipient]],
    transfers: list[Transfer],
) -> Activity:
    return Activity(
        purpose=p.id,
        title_de=p.title_de,
        title_en=p.title_en,
        description_de=p.description_de,
        description_en=p.description_en,
        lawful_basis=p.lawful_basis.value,
        legal_reference=ARTICLE[p.lawful_basis],
        data_categories=list(p.fields),
        subject_categories=[c[0] for c in SUBJECT_CATEGORIES],
        recipients=configured.get(p.id, []),
        observed_recipients=observed.get(p.id, []),
        retention_after_end_days=p.retention_after_end.days,
        notified_recipients=notified.get(p.id, []) + notified.get("*", []),
        default_consent_days=p.default_duration.days if p.default_duration else None,
        channel=p.channel,
        communication_type=p.communication_type.value,
        double_opt_in=p.double_opt_in,
        explicit_consent=p.explicit_consent,
        data_use=p.data_use,
        third_country_transfers=transfers,
    )


async def record_of_processing(ctx: VaultContext, actor: Actor) -> Ropa:
    """The Art. 30 record as it stands now. Audited."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        client_rows = (
            await conn.execute(
                select(clients.c.name, clients.c.role, clients.c.purposes)
                .where(clients.c.revoked_at.is_(None))
                .order_by(clients.c.name)
            )
        ).all()
        reads = (
            await conn.execute(
                select(
                    audit_events.c.purpose,
                    audit_events.c.actor_id,
                    func.count(),
                    func.max(audit_events.c.at),
                )
                .where(audit_events.c.action == str(AuditAction.LOOKUP))
                .where(audit_events.c.decision == str(Decision.ALLOW))
                .where(audit_events.c.purpose.is_not(None))
                .group_by(audit_events.c.purpose, audit_events.c.actor_id)
            )
        ).all()
        subscriptions = (
            await conn.execute(
                select(
                    recipients.c.name,
                    recipients.c.transport,
                    recipient_subscriptions.c.purpose,
                    recipient_subscriptions.c.event_type,
                )
                .join(recipients, recipients.c.id == recipient_subscriptions.c.recipient_id)
                .order_by(recipients.c.name, recipient_subscriptions.c.event_type)
            )
        ).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_ROPA_READ,
            decision=Decision.ALLOW,
            detail={"catalogue_version": ctx.catalogue.version},
        )
    configured: dict[str, list[Recipient]] = {}
    for row in client_rows:
        for purpose in json.loads(row.purposes or "[]"):
            configured.setdefault(purpose, []).append(Recipient(row.name, row.role))
    observed: dict[str, list[ObservedRecipient]] = {}
    for purpose, client, n, last in reads:
        observed.setdefault(purpose, []).append(ObservedRecipient(client, int(n), as_utc(last)))
    for items in observed.values():
        items.sort(key=lambda r: (-r.reads, r.client))
    by_purpose: dict[tuple[str, str], dict[str, Any]] = {}
    for name, transport, purpose, event_type in subscriptions:
        entry = by_purpose.setdefault((purpose, name), {"transport": transport, "types": []})
        entry["types"].append(event_type)
    notified: dict[str, list[NotifiedRecipient]] = {}
    for (purpose, name), entry in by_purpose.items():
        notified.setdefault(purpose, []).append(
            NotifiedRecipient(name, entry["transport"], entry["types"])
        )
    activities = [
        _activity(p, configured, observed, notified, ctx.controller.transfers_of(p.id))
        for p in sorted(ctx.catalogue.purposes.values(), key=lambda p: p.id)
    ]
    return Ropa(
        catalogue_version=ctx.catalogue.version,
        generated_at=now,
        activities=activities,
        security_measures=SECURITY_MEASURES,
        controller=ctx.controller.controller,
        dpo=ctx.controller.dpo,
        controller_version=ctx.controller.version,
    )
