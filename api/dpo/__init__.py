"""The data-protection officer's console: web pages at /dpo (German, English via ?lang=).

Sign-in: the DPO pastes an API key of the role `dpo` (checked by the same authenticator as
the API), or, when TRESOR_OIDC_ISSUER is set, signs in through the organisation's identity
provider (`sso`). The answer is a session cookie `tresor_dpo` (HttpOnly, SameSite=Strict,
Path=/dpo, Secure over TLS) holding a random id; the session itself is a database row
(`vault.admin.console_sessions`) that every page reads, so a sign-out, a revoked key, the
idle (TRESOR_SESSION_IDLE_MINUTES) and the absolute timeout (TRESOR_CONSOLE_SESSION_HOURS)
end it at once on every node. Sign-in is limited per account and per address, and every
attempt and sign-out is audited.

Every form posts through Litestar's CSRF middleware (double-submit: an HMAC-signed token in
the cookie `tresor_dpo_csrf` that each form echoes as `_csrf_token`), mounted on this
controller only; the sign-in form is covered too (login CSRF).

Everything a DPO looks at here is audited by the vault functions behind it, exactly like the
same reads through the API. Charts are inline SVG drawn on the server (no script, no CDN),
each with a table of its numbers for screen readers.

One module per page group (`signin`, `trail`, `requests`, `subjects`, `stats`, `outreach`,
`campaigns`, `calendar`, `reports`, `mail`), each a
controller extending `pages.DpoPages`; the session cookie is `session`, the charts `charts`,
and the cookie, CSRF and error plumbing shared with the privacy centre is `api.web`.
"""

from api.dpo.calendar import DpoCalendarPages
from api.dpo.campaigns import DpoCampaignPages
from api.dpo.copy_script import DpoScriptPages
from api.dpo.mail import DpoMailPages
from api.dpo.outreach import DpoOutreachPages
from api.dpo.recipients import DpoRecipientPages
from api.dpo.reports import DpoReportPages
from api.dpo.requests import DpoRequestPages
from api.dpo.signin import DpoSignInPages
from api.dpo.sso import DpoSsoPages
from api.dpo.stats import DpoStatsPages
from api.dpo.subjects import DpoSubjectPages
from api.dpo.trail import DpoTrailPages

#: The console's controllers, one per page group, as `api.app` registers them.
CONTROLLERS = [
    DpoSignInPages,
    DpoSsoPages,
    DpoTrailPages,
    DpoRequestPages,
    DpoMailPages,
    DpoStatsPages,
    DpoOutreachPages,
    DpoCampaignPages,
    DpoCalendarPages,
    DpoReportPages,
    DpoRecipientPages,
    DpoSubjectPages,
    DpoScriptPages,
]
