"""The data subject's rights (GDPR Art. 12-22) and the privacy centre.

Owns requests against their deadlines (`requests`, `deadlines`), erasure by
crypto-shredding with the Art. 17(3) exception (`erasure`), restriction and objection
(`restriction`), the Art. 15/20 export (`export`), the retention sweep (`retention`), the
self-service sign-in and its limits (`selfservice`, `signin_limits`) and the restriction
request that an objection to an address change opens (`identity_objection`).

May use every area below it (outreach, bases, subjects, audit, catalogue, crypto, storage)
and the kernel: a right reaches everything kept about a person. Independent of admin.
"""
