"""Access to contact data: one pipeline, read → decide → reveal → audit, for every lookup.

A single lookup (`lookup`) is a batch of one; bulk resolution (`bulk`) runs the same
pipeline (`pipeline`) per chunk, and the audience dry run (`dry_run`) its read and decision
without revealing anything. The steps: one read of the subjects joined with their records
for the purpose (`statements`, through a storage `ReadPort`), the purpose decision per
identifier (`judge`, over `vault.subjects.decision`), the stored data opened and checked
(`reveal`), the contact reserved where one is announced, and one audit event per identifier
(`events`) handed to an `AuditSink` (`ports`: the group commit, or the caller's
transaction); data leave only after the sink returned.

Sits between bases and subjects: may use subjects, audit, catalogue, crypto, storage and the
kernel; outreach uses its decision to record contacts (`judge_subject`).
"""
