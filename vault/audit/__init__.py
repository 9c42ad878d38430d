"""The audit trail: what every area writes, and what the data-protection officer reads.

Owns the events and their vocabulary (`events`: `AuditAction`, `Actor`, `Decision`,
`record`, the action a source gets), the group commit of the hot paths (`batch`), the HMAC
chain with signed checkpoints and its verification (`chain`), the DPO's search and
statistics (`query`), the export of the trail (`export`) and the Art. 30 record of
processing (`ropa`).

May use the catalogue (Art. 30 lists the purposes), crypto, storage and the kernel. Every
area above writes its events through `events`, so this area imports none of them: what it
reports on, it reads from the tables.
"""
