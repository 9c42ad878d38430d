"""The Tresor KEK versions on a real SoftHSM2 token (vault.crypto.pkcs11_token): wrap and
unwrap, the binding to subject and version, the key's non-extractability, the newest key for
new wraps, and keys not generated on the token refused."""

from __future__ import annotations

import pytest

from tests.support.softhsm import MODULE, SoftToken
from vault.crypto import DecryptionError, KeyringError
from vault.crypto.pkcs11_token import LABEL_PREFIX, Pkcs11Token

DEK = bytes(range(32))


def _session(token: SoftToken):
    """A session of the test itself (not the provider's) on the token."""
    import pkcs11

    return (
        pkcs11.lib(str(MODULE)).get_token(token_label=token.label).open(rw=True, user_pin=token.pin)
    )


def test_wrap_unwrap_roundtrip(hsm: Pkcs11Token) -> None:
    """A DEK wrapped on the token unwraps to the same bytes; the blob never contains the DEK."""
    assert hsm.versions() == []
    assert hsm.add_version() == 1
    version, blob = hsm.wrap("subject-a", DEK)
    assert version == 1
    assert DEK not in blob
    assert hsm.unwrap("subject-a", 1, blob) == DEK
    again = hsm.wrap("subject-a", DEK)[1]
    assert again != blob  # a fresh nonce per wrap
    assert hsm.unwrap("subject-a", 1, again) == DEK


def test_kek_on_the_token_is_sensitive_and_never_extractable(token: SoftToken) -> None:
    """The generated KEK refuses to reveal CKA_VALUE, to become extractable or to be wrapped
    out by another key; it was generated on the token and was never extractable."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    hsm = Pkcs11Token(MODULE, token.label, token.pin)
    hsm.add_version()
    hsm.close()  # logs the provider out, so the test logs in with its own session
    session = _session(token)
    try:
        kek = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=f"{LABEL_PREFIX}1")
        assert kek[Attribute.SENSITIVE] and kek[Attribute.ALWAYS_SENSITIVE]
        assert not kek[Attribute.EXTRACTABLE] and kek[Attribute.NEVER_EXTRACTABLE]
        assert kek[Attribute.LOCAL] and kek[Attribute.PRIVATE] and kek[Attribute.TOKEN]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            kek[Attribute.VALUE]
        with pytest.raises(pkcs11.PKCS11Error):
            kek[Attribute.EXTRACTABLE] = True
        wrapper = session.generate_key(
            KeyType.AES, 256, store=False, template={Attribute.WRAP: True}
        )
        with pytest.raises(pkcs11.PKCS11Error):
            wrapper.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP_PAD)
    finally:
        session.close()


def test_wrong_subject_version_or_tampered_blob_does_not_unwrap(hsm: Pkcs11Token) -> None:
    """A DEK wrapped for subject A fails for subject B, under another or unknown version, and
    with any byte flipped; every failure is the same opaque DecryptionError."""
    hsm.add_version()
    version, blob = hsm.wrap("subject-a", DEK)
    assert hsm.add_version() == 2
    with pytest.raises(DecryptionError):
        hsm.unwrap("subject-b", version, blob)
    with pytest.raises(DecryptionError):
        hsm.unwrap("subject-a", 2, blob)
    with pytest.raises(DecryptionError):
        hsm.unwrap("subject-a", 7, blob)
    for i in (0, 5, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            hsm.unwrap("subject-a", version, bytes(tampered))
    with pytest.raises(DecryptionError):
        hsm.unwrap("subject-a", version, blob[:-1])
    assert hsm.unwrap("subject-a", version, blob) == DEK


def test_new_wraps_use_the_newest_token_key_and_old_ones_still_unwrap(hsm: Pkcs11Token) -> None:
    """After another key is generated, wraps use it at once and blobs of the older one open."""
    hsm.add_version()
    _, old = hsm.wrap("s", DEK)
    assert hsm.add_version() == 2
    assert hsm.wrap("s", DEK)[0] == 2
    assert hsm.unwrap("s", 1, old) == DEK
    assert hsm.destroy_versions({1, 2}) == [1]  # never the newest
    assert hsm.versions() == [2]
    with pytest.raises(DecryptionError):
        hsm.unwrap("s", 1, old)


def test_an_imported_or_extractable_key_under_a_tresor_label_is_refused(token: SoftToken) -> None:
    """A key named like a Tresor KEK but imported in plaintext (known to someone) stops the
    provider from opening instead of being used."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    session = _session(token)
    try:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.LABEL: f"{LABEL_PREFIX}1",
                Attribute.VALUE: bytes(32),
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
            }
        )
    finally:
        session.close()
    with pytest.raises(KeyringError, match="generated on the token"):
        Pkcs11Token(MODULE, token.label, token.pin)
