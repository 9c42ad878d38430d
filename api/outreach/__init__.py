"""The routes of the outreach area (`vault.outreach`): recorded contacts (`contacts`),
follow-ups (`followups`), contact preferences (`preferences`) and the contact report
(`reports`).
"""
