"""Lawful bases: consents and the other bases (contract, legal obligation, legitimate
interest) a purpose rests on.

Owns recording a basis with its evidence, double opt-in and its confirmation mail,
withdrawal, listing with history, the sealed free text (`consents`), the consent proof for
a regulator (`consent_proof`) and ending a subject's live bases when a right demands it
(`ending`).

May use subjects (the store, the decision's statuses, audited reads), audit, catalogue,
crypto, storage and the kernel.
"""
