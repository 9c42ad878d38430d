"""Errors of the crypto layer, deliberately uninformative."""


class DecryptionError(Exception):
    """A ciphertext could not be opened.

    One error for every cause (wrong key, tampered tag, swapped associated data, truncated
    blob): telling them apart would help an attacker, never an operator.
    """

    def __init__(self) -> None:
        super().__init__("ciphertext could not be opened")


class KeyringError(Exception):
    """The keyring is missing, unreadable or lacks a needed key version."""
