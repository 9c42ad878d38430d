"""The routes of the audit area (`vault.audit`) for the DPO: the trail, access statistics
and chain integrity (`trail`); consent proof, consent statistics and the record of
processing (`documents`).
"""
