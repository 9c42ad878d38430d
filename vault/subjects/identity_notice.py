"""The notice of an identity change to the old e-mail address (`vault.subjects.identity`),
in German and English: what changed, until when a sign-in through a new address is
restricted, and the link to confirm the change or object to it. It names the changed fields,
never an address: the new one could belong to someone else now.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage

from vault.settings import Settings

#: How long the link in the notice can be used: long enough to be back from a holiday.
LINK_VALIDITY = timedelta(days=30)

#: The changed fields as the notice names them (German, English), whatever their order.
_WHAT = {
    frozenset({"email"}): ("die E-Mail-Adresse", "the e-mail address"),
    frozenset({"phone"}): ("die Telefonnummer", "the phone number"),
    frozenset({"email", "phone"}): (
        "die E-Mail-Adresse und die Telefonnummer",
        "the e-mail address and the phone number",
    ),
}
_NOTICE_SUBJECT = (
    "Ihre Kontaktdaten wurden geändert – waren Sie das? / "
    "Your contact details were changed – was this you?"
)
_NOTICE_BODY = """(English below)

Guten Tag,

am {at_de} UTC wurde {what_de} Ihres Kundenkontos bei uns geändert. Zu Ihrem Schutz zeigt
das Datenschutz-Center bei einer Anmeldung über eine neue E-Mail-Adresse bis zum
{until_de} UTC keine Kontaktdaten an und erlaubt dort weder Auskunft noch Löschung noch
andere Änderungen – es sei denn, Sie bestätigen die Änderung.

Waren Sie das? Bestätigen Sie die Änderung oder widersprechen Sie ihr hier:

    {link}

Wenn Sie die Änderung nicht veranlasst haben, wählen Sie dort „Das war ich nicht“. Dann
beenden wir alle Anmeldungen im Datenschutz-Center, die neue Adresse bleibt gesperrt, und
unser Datenschutzteam prüft den Vorgang und meldet sich bei Ihnen. Der Link ist
{days} Tage gültig. Geben Sie ihn nicht weiter.

----------------------------------------------------------------------

Hello,

on {at_en} UTC {what_en} of your customer account was changed. For your protection, until
{until_en} UTC the privacy centre shows no contact data to a sign-in through a new e-mail
address and allows no export, erasure or other change there, unless you confirm the change.

Was this you? Confirm the change or object to it here:

    {link}

If you did not make this change, choose "This was not me" there. We then end every
sign-in to the privacy centre, the new address stays locked, and our data protection team
looks into it and gets back to you. The link is valid for {days} days. Do not pass it on.
"""


def mail(
    settings: Settings,
    address: str,
    kinds: Sequence[str],
    token: str,
    at: datetime,
    until: datetime,
) -> EmailMessage:
    """The notice to the old address, in German and English. It names the changed fields,
    never an address (the new one could belong to someone else now)."""
    what_de, what_en = _WHAT[frozenset(kinds)]
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = address
    msg["Subject"] = _NOTICE_SUBJECT
    msg.set_content(
        _NOTICE_BODY.format(
            at_de=at.strftime("%d.%m.%Y, %H:%M"),
            at_en=at.strftime("%Y-%m-%d %H:%M"),
            until_de=until.strftime("%d.%m.%Y, %H:%M"),
            until_en=until.strftime("%Y-%m-%d %H:%M"),
            what_de=what_de,
            what_en=what_en,
            link=f"{settings.public_url}/privacy/identity/{token}",
            days=LINK_VALIDITY.days,
        )
    )
    msg["Content-Language"] = "de, en"
    return msg
