"""The privacy centre's web pages at /privacy, one module per page group (`signin`,
`overview`, `giving`, `identity`, `preferences`), each a controller extending `pages.PrivacyPages`;
the cookie, CSRF and error plumbing it shares with the DPO console is `api.web`.
"""

from api.privacy.giving import PrivacyConsentPages
from api.privacy.identity import PrivacyIdentityPages
from api.privacy.overview import PrivacyOverviewPages
from api.privacy.preferences import PrivacyPreferencePages
from api.privacy.signin import PrivacySignInPages

#: The privacy centre's controllers, as `api.app` registers them.
CONTROLLERS = [
    PrivacyOverviewPages,
    PrivacySignInPages,
    PrivacyIdentityPages,
    PrivacyPreferencePages,
    PrivacyConsentPages,
]
