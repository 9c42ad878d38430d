"""The data subjects and their contact data: the sealed store and the purpose decision.

Owns contact validation and normalisation (`contact`), the encrypted store with its blind
indexes (`store`), the purpose check as a pure function (`decision`: allow with a basis, or
deny with a reason), the audited refusal of stored data that fails an integrity check
(`integrity`), the re-sealing of rows written before contact revisions
(`revision_upgrade`) and the record of a changed identifying address with the trust it
withdraws (`identity`, its notice in `identity_notice`). The purpose-checked read itself
(lookup, bulk, dry run) is the access area's pipeline (`vault.access`), above this one.

May use audit, catalogue, crypto, storage and the kernel. A lookup that announces an
outbound contact reserves it through `outbound.OutboundContact`, a protocol the outreach
area implements: the basket sits above this area.
"""
