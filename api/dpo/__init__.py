"""The data-protection officer's console: web pages at /dpo (German, English via ?lang=).

Sign-in: the DPO pastes an API key of the role `dpo`; it is checked by the same
authenticator as the API, and the answer is a session cookie `tresor_dpo` (HttpOnly,
SameSite=Strict, Path=/dpo, Secure over TLS). The cookie is a server-signed token, not a
key into process memory: `v1.<payload>.<HMAC-SHA256>` where the payload names the client
(id and name) and the expiry, and the MAC key is derived from the keyring's server key, so
every node sharing the keyring accepts it (multi-node) and nothing else can mint one. Each
page re-reads the client row, so revoking the key ends its sessions at once on every node.

Every form posts through Litestar's CSRF middleware (double-submit: an HMAC-signed token in
the cookie `tresor_dpo_csrf` that each form echoes as `_csrf_token`), mounted on this
controller only; the sign-in form is covered too (login CSRF).

Everything a DPO looks at here is audited by the vault functions behind it, exactly like the
same reads through the API. Charts are inline SVG drawn on the server (no script, no CDN),
each with a table of its numbers for screen readers.

One module per page group (`signin`, `trail`, `requests`, `stats`, `outreach`), each a
controller extending `pages.DpoPages`; the session token is `session`, the charts `charts`,
and the cookie, CSRF and error plumbing shared with the privacy centre is `api.web`.
"""

from api.dpo.outreach import DpoOutreachPages
from api.dpo.recipients import DpoRecipientPages
from api.dpo.requests import DpoRequestPages
from api.dpo.signin import DpoSignInPages
from api.dpo.stats import DpoStatsPages
from api.dpo.trail import DpoTrailPages

#: The console's controllers, one per page group, as `api.app` registers them.
CONTROLLERS = [
    DpoSignInPages,
    DpoTrailPages,
    DpoRequestPages,
    DpoStatsPages,
    DpoOutreachPages,
    DpoRecipientPages,
]
