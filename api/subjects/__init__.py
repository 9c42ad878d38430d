"""The routes of the subjects area (`vault.subjects`): storing and rectifying contact data
(`subjects`), the purpose-checked lookup (`lookup`), bulk resolution and the dry run
(`bulk`), identity changes for the DPO (`identity_changes`).
"""
