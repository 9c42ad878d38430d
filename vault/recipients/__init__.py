"""Recipients (issue 16): telling every system that received a customer's data when the
customer changes their mind (GDPR Art. 19, 17(2), 7(3), 21(3)).

Owns the transactional outbox of domain events (`events`: written by the areas above in
the change's own transaction), the recipients and their subscriptions and signing secrets
(`registry`, `urls`, `signing`), who must be told (`fanout`, from the audit trail's
lookups), delivery over Standard Webhooks and NATS JetStream (`delivery`, `transports`)
and the recipients' acknowledgements (`acks`).

Layer: below `subjects` (so subjects, bases, outreach and rights can write events), above
`audit`. May use audit, catalogue, crypto, storage and the kernel.
"""
