"""Administration: who may call the vault, and the keys that wrap every subject's key.

Owns the API clients with their roles, purposes and keys (`clients`), their key rotation
and clean-up (`hygiene`) and quotas (`quotas`), the fixed-window counters every node shares
for the failed-authentication brake and the quotas (`limits`: database or Redis), the client
certificates bound to clients for mutual TLS (`certificates`), the DPO console's sessions and
sign-in limits (`console_sessions`), idempotency records (`idempotency`), and the
key-encryption keys: rotation, re-wrapping, retirement and the move onto a PKCS#11 token
(`keys`).

May use audit (every change is an event), crypto, storage and the kernel; it needs no other
area. Independent of rights.
"""
