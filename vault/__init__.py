"""Tresor's domain core: no HTTP; `api/` depends on it, never the reverse.

One package per area, in layers: an area imports only the areas below it (the
import-linter contracts in pyproject.toml, run by `make test`; docs/architecture.md says it
in words). From the top:

    context                     the composition root: builds what the areas are handed
    admin | rights              API clients and KEK rotation | the data subject's rights
    outreach                    the monthly basket, preferences, follow-ups, reports
    bases                       consents and the other lawful bases, their proof
    subjects                    contact data: validation, store, decision, lookup, bulk
    audit                       events, group commit, chain, query, export, Art. 30
    catalogue                   purposes, touchpoints, contact-pressure rules (TOML)
    crypto | storage | mail     fields and keys | tables and engines | the mailer
    settings : clock : errors : progress   the shared kernel

`|` separates areas that stay independent of each other.
"""
