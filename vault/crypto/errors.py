"""Errors of the crypto layer, deliberately uninformative."""


class IntegrityCheckFailed(Exception):
    """Stored protected data failed a check: a ciphertext would not open, or a blind-index
    entry does not belong to the value it was found by.

    Callers catch this one class for every such case and refuse (an audited denial): what
    exactly failed helps an attacker probing the database, never an operator."""


class DecryptionError(IntegrityCheckFailed):
    """A ciphertext could not be opened.

    One error for every cause (wrong key, tampered tag, swapped associated data, replayed
    older revision, truncated blob): telling them apart would help an attacker, never an
    operator.
    """

    def __init__(self) -> None:
        super().__init__("ciphertext could not be opened")


class IndexMismatch(IntegrityCheckFailed):
    """A row found by a blind index holds a value that does not index to it (the entry was
    moved or copied onto another row)."""

    def __init__(self) -> None:
        super().__init__("stored data failed its integrity check")


class KeyringError(Exception):
    """The keyring is missing, unreadable or lacks a needed key version."""
