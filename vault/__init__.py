"""Tresor's domain core: crypto, keys, subjects, consents, policies, lookup and audit.

Nothing in this package knows about HTTP; `api/` depends on it, never the reverse.
"""
