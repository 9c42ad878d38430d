"""The privacy centre's web pages at /privacy (`pages`); the cookie, CSRF and error
plumbing it shares with the DPO console is `api.web`.
"""
