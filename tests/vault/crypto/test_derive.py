"""Keys derived by label from the server secret: HKDF-SHA256, one key per use, stable."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from vault.crypto import DerivedKeys, KeyLabel, Mac, derive_key

SECRET = bytes(range(32))


def _rfc5869(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 written out from RFC 5869 (no salt: HashLen zero bytes), to check the
    library call against the definition rather than against itself."""
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


def test_rfc5869_test_case_3_holds_for_the_reference_used_here():
    """The reference HKDF in this test reproduces RFC 5869 test case 3 (SHA-256, no salt,
    no info), so it is a fair yardstick."""
    ikm = bytes.fromhex("0b" * 22)
    okm = _rfc5869(ikm, b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


@pytest.mark.parametrize("label", list(KeyLabel))
def test_each_label_derives_hkdf_sha256_of_the_secret_with_the_label_as_info(label):
    """`derive_key` is HKDF-SHA256 with the label's text as `info` and no salt."""
    assert derive_key(SECRET, label) == _rfc5869(SECRET, label.value.encode())


def test_the_labels_are_fixed():
    """A label is the `info` of its key: renaming one would silently change the key (and,
    for the API-key hash, lock every client out), so the texts are pinned here."""
    assert {label.name: label.value for label in KeyLabel} == {
        "API_KEY_HASH": "tresor/v1/api-key-hash",
        "SELF_SERVICE_CODE": "tresor/v1/self-service-code",
        "SELF_SERVICE_LINK": "tresor/v1/self-service-link",
        "SELF_SERVICE_SESSION": "tresor/v1/self-service-session",
        "SELF_SERVICE_IP": "tresor/v1/self-service-ip",
        "IDENTITY_NOTICE": "tresor/v1/identity-notice-link",
        "DPO_SESSION": "tresor/v1/dpo-session",
        "DPO_CSRF": "tresor/v1/dpo-csrf",
        "PRIVACY_CSRF": "tresor/v1/privacy-csrf",
        "CONSOLE_SIGNIN": "tresor/v1/console-signin",
        "SSO_FLOW": "tresor/v1/sso-flow",
        "LIMIT_ADDRESS": "tresor/v1/limit-address",
        "MAIL_OUTBOX": "tresor/v1/mail-outbox",
    }


def test_labels_give_distinct_keys_and_none_is_the_secret():
    """Every use gets its own key, different from the others and from the secret itself."""
    keys = {derive_key(SECRET, label) for label in KeyLabel}
    assert len(keys) == len(KeyLabel)
    assert SECRET not in keys
    assert all(len(k) == 32 for k in keys)


def test_same_label_same_key_and_another_secret_another_key():
    """Derivation is deterministic per (secret, label), so every node sharing the keyring
    agrees; another secret gives another key."""
    other = bytes(range(1, 33))
    for label in KeyLabel:
        assert derive_key(SECRET, label) == derive_key(SECRET, label)
        assert derive_key(SECRET, label) != derive_key(other, label)


def test_only_labels_of_the_enum_and_full_length_secrets_are_accepted():
    """A free-form string is not a label (labels are fixed), and a short secret is refused."""
    with pytest.raises(TypeError):
        derive_key(SECRET, "tresor/v1/api-key-hash")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        derive_key(SECRET[:16], KeyLabel.API_KEY_HASH)
    with pytest.raises(ValueError):
        DerivedKeys(SECRET[:16])


def test_derived_keys_give_the_derived_key_and_its_mac():
    """`DerivedKeys` hands out the same key as `derive_key`, and its MAC is keyed with it;
    the legacy MAC is keyed with the raw secret."""
    keys = DerivedKeys(SECRET)
    label = KeyLabel.DPO_SESSION
    assert keys.key(label) == derive_key(SECRET, label)
    assert keys.mac(label).digest(b"m") == Mac(derive_key(SECRET, label)).digest(b"m")
    assert keys.legacy_mac().digest(b"m") == hmac.new(SECRET, b"m", hashlib.sha256).hexdigest()
    assert "DerivedKeys(<secret>)" == repr(keys) and SECRET.hex() not in repr(keys)
