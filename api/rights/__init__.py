"""The routes of the rights area (`vault.rights`): data-subject requests and the export for
the DPO (`requests`), and the self-service JSON API at /self/v1 (`selfservice`), with
what it shares with the privacy centre's pages (`self_views`).
"""
