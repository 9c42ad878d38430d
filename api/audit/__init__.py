"""The routes of the audit area (`vault.audit`) for the DPO: the trail, statistics, chain
integrity, consent proof and the record of processing (`trail`).
"""
