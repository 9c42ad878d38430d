"""The mail outbox (issue 20 item 9): one row per mail the vault is to send, written in the
transaction of the change that causes it, so a rollback takes the mail along and a mail
server outage delays mail instead of losing it (`vault.mail_outbox` sends it).

A module of its own beside `tables.py` (same `Base`, so the same metadata), imported by the
package's `__init__` like the recipients' tables.

No contact value in the clear: the whole message as it leaves (headers with the recipient's
address, and a body that may carry a name, a sign-in code or a confirmation link) is sealed
in `sealed`; `kind` names the template, never a value, and `last_error` is an exception's
class name only. Once a mail is sent or discarded, `sealed` is set to NULL: nothing of it
is left at rest after it left (or will never leave). A failed mail a DPO may still retry
keeps it until its content goes stale or the row's retention ends (`vault.mail_outbox`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from vault.storage.tables import TZ, Base


class MailOutbox(Base):
    """One mail to send; `id` is also the key its seal is bound to."""

    __tablename__ = "mail_outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: The subject the mail is about (erasure deletes its pending mails); NULL for none.
    subject_id: Mapped[str | None] = mapped_column(String(36))
    #: The template (`signin`, `doi_confirmation`, ...): a name, never a value.
    kind: Mapped[str] = mapped_column(String(40))
    #: The mail's language (`de`, `en`, or `de,en` for the bilingual ones).
    language: Mapped[str] = mapped_column(String(16))
    #: The message as it leaves (`Date` and `Message-ID` fixed when queued, so every
    #: attempt sends the same mail), sealed under the outbox key; NULL once sent or failed.
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: pending, sent, failed or discarded (by a DPO).
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(TZ)
    #: When the next attempt is due (a claim moves it past the send timeout: its lease).
    next_attempt_at: Mapped[datetime] = mapped_column(TZ)
    #: After this the mail is not sent any more (`failed`): 24 h for notices by default,
    #: the code's expiry for a sign-in code.
    give_up_at: Mapped[datetime] = mapped_column(TZ)
    #: The class of the last failure (`ConnectionRefusedError`), never a message or address.
    last_error: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(TZ)
    #: Until when the content means something (a sign-in code's expiry, a confirmation
    #: deadline); NULL when it does not go stale. A DPO retries a failed mail only before.
    valid_until: Mapped[datetime | None] = mapped_column(TZ)
    #: The reason the DPO gave for the last retry or discard.
    dpo_note: Mapped[str | None] = mapped_column(String(1000))

    __table_args__ = (
        Index("ix_mail_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_mail_outbox_subject_id", "subject_id"),
    )


mail_outbox = MailOutbox.__table__
