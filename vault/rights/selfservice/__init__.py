"""Self-service identity and the subject's own view: one-time codes, sessions, "my data".

A customer proves control of a stored address by a one-time code mailed to the subject's
*stored* e-mail address; a correct code opens a session (a `web_sessions` row,
`vault.storage.sessions`: it ends after TRESOR_SESSION_IDLE_MINUTES without a request or
TRESOR_SELF_SESSION_MINUTES in all, at sign-out, erasure or a change of the address).
The outcome a caller sees never depends on whether the address exists (no enumeration): the
same queries run, a challenge row is written either way, and the mail leaves on a background
task, so its cost does not show in the answer. Before answering, the mailer is probed
(`check`) for known and unknown addresses alike: while it is down every caller gets the same
503 and nothing is written, so no code is promised that cannot leave. Rate limits per
address and per client IP are counted from the database (multi-node safe). Codes and session
tokens are stored only as HMACs under a server key; addresses and IPs only as keyed digests.
Every step is audited pseudonymously (subject id when known, never the address).

Per customer, across its addresses, codes are limited and wrong codes lead to an
escalating lockout (`vault.signin_limits`). The lock keeps guessers out, but anyone can
cause it, so it must not keep the customer out: while it holds, a request mails a one-time
sign-in *link* to the stored e-mail address instead of a code (`open_link_session`). Its
token has 256 bits, so it needs neither an attempt limit nor a lock; it is short-lived
(`otp_minutes`), single use, stored only as an HMAC, and void once the address changes.
Requests for known and unknown addresses still run the same statements and get the same
answer. A session opened through an e-mail address whose change is not yet confirmed
(by code or by link) is restricted (`vault.subjects.identity`): `session_subject` refuses it,
`session_info` and `my_data` serve only the reduced overview.

By concern: keyed digests (`digests`), the sign-in mails (`mail`), one-time codes
(`challenges`), sign-in links (`links`), sessions (`sessions`), the purge of what no longer
counts (`purge`) and the subject's own view (`own_view`). Callers import from here; the
helpers the modules share (e.g. `digests.hash_session`) are the package's own.
"""

from vault.rights.selfservice.challenges import start_challenge, verify_code
from vault.rights.selfservice.digests import KINDS
from vault.rights.selfservice.giving import durations, give_consent, offerable
from vault.rights.selfservice.links import link_usable, open_link_session
from vault.rights.selfservice.mail import code_mail, link_mail, link_path, wait_for_mail
from vault.rights.selfservice.own_view import (
    ACCESS_KINDS,
    ACCESS_LOG_LIMIT,
    AccessEntry,
    ConsentView,
    SelfView,
    my_data,
    withdraw_consent,
)
from vault.rights.selfservice.purge import purge_expired
from vault.rights.selfservice.sessions import (
    SelfSession,
    SessionToken,
    end_session,
    refuse_restricted,
    session_info,
    session_subject,
    subject_actor,
)

__all__ = [
    "durations",
    "give_consent",
    "offerable",
    "ACCESS_KINDS",
    "ACCESS_LOG_LIMIT",
    "AccessEntry",
    "ConsentView",
    "KINDS",
    "SelfSession",
    "SelfView",
    "SessionToken",
    "code_mail",
    "end_session",
    "link_mail",
    "link_path",
    "link_usable",
    "my_data",
    "open_link_session",
    "purge_expired",
    "refuse_restricted",
    "session_info",
    "session_subject",
    "start_challenge",
    "subject_actor",
    "verify_code",
    "wait_for_mail",
    "withdraw_consent",
]
