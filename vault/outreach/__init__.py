"""Contacting customers: the monthly basket of contact points and the customer's say in it.

Owns spending the basket one contact at a time, contacts recorded without a lookup and who
may announce which priority (`basket`), the customer's contact preferences (`preferences`,
changed with evidence and history in `preference_changes`), agreed follow-ups (`followups`,
read in `followup_reads`, changed in `followup_changes`) and the monthly contact-pressure
report with its aggregates (`report`).

May use bases (a preference change carries a consent's kind of evidence), subjects (the
lookup's decision for recorded contacts; `basket.ContactSpec` is the lookup's
`OutboundContact`), audit, catalogue, crypto, storage and the kernel.
"""
