"""The local keyring file: creation, wrapping, versions, refresh across processes, retiring."""

from __future__ import annotations

import json
import os
import stat
import traceback
import uuid
from pathlib import Path

import pytest

from vault.crypto import DecryptionError, KeyringError, LocalKeyring

SID = str(uuid.uuid4())
DEK = bytes(range(32))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "keyring.json"


@pytest.fixture
def keyring(path: Path) -> LocalKeyring:
    return LocalKeyring.create(path)


def _key_material(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    return [*doc["keks"].values(), doc["index_key"], doc["client_key"], doc["audit_key"]]


def test_create_writes_a_0600_file_and_no_leftovers(path: Path, keyring: LocalKeyring) -> None:
    """A new keyring is a single file readable by its owner only, with version 1 active."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["keyring.json"]
    assert keyring.active_version() == 1
    assert keyring.versions() == [1]
    secrets = keyring.secrets
    assert len({secrets.index_key, secrets.client_key, secrets.audit_key}) == 3
    assert all(len(k) == 32 for k in (secrets.index_key, secrets.client_key, secrets.audit_key))


def test_create_refuses_to_overwrite(path: Path, keyring: LocalKeyring) -> None:
    """Creating a keyring where one exists raises KeyringError and leaves the file as it was."""
    before = path.read_bytes()
    with pytest.raises(KeyringError, match="refusing to overwrite"):
        LocalKeyring.create(path)
    assert path.read_bytes() == before


def test_wrap_unwrap_round_trip(keyring: LocalKeyring) -> None:
    """A wrapped DEK unwraps to the same bytes under the version it was wrapped with."""
    version, blob = keyring.wrap(SID, DEK)
    assert version == 1
    assert DEK not in blob
    assert keyring.unwrap(SID, version, blob) == DEK


@pytest.mark.parametrize(
    "subject_id, version",
    [(str(uuid.uuid4()), 1), (SID, 2), (SID, 99)],
    ids=["other subject", "other existing version", "unknown version"],
)
def test_unwrap_with_wrong_binding_fails_opaquely(
    keyring: LocalKeyring, subject_id: str, version: int
) -> None:
    """A wrapped DEK presented for another subject or version raises the opaque DecryptionError."""
    _, blob = keyring.wrap(SID, DEK)
    keyring.add_version()
    with pytest.raises(DecryptionError, match="^ciphertext could not be opened$"):
        keyring.unwrap(subject_id, version, blob)


def test_add_version_activates_it_and_old_wraps_still_open(
    path: Path, keyring: LocalKeyring
) -> None:
    """After add_version new wraps use the new version, and DEKs wrapped before still unwrap."""
    _, old_blob = keyring.wrap(SID, DEK)
    assert keyring.add_version() == 2
    assert keyring.active_version() == 2
    assert keyring.versions() == [1, 2]
    version, new_blob = keyring.wrap(SID, DEK)
    assert version == 2
    assert keyring.unwrap(SID, 1, old_blob) == DEK
    assert keyring.unwrap(SID, 2, new_blob) == DEK
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["keyring.json"]


def test_other_instance_picks_up_a_new_version(path: Path, keyring: LocalKeyring) -> None:
    """A second instance on the same file (the server) sees a version another one added."""
    server = LocalKeyring(path)
    before = path.stat().st_mtime_ns
    new = keyring.add_version()
    # Force a distinct mtime even on file systems with coarse timestamps.
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))
    assert server.active_version() == new
    version, blob = server.wrap(SID, DEK)
    assert version == new
    assert keyring.unwrap(SID, version, blob) == DEK


def test_other_instance_picks_up_a_change_within_one_timestamp_tick(
    path: Path, keyring: LocalKeyring
) -> None:
    """A change is seen even when the new file carries the old mtime (coarse-grained clocks)."""
    server = LocalKeyring(path)
    before = path.stat().st_mtime_ns
    keyring.add_version()
    os.utime(path, ns=(before, before))  # what a 1-second-granularity file system produces
    assert server.active_version() == 2


def test_unwrap_under_a_version_added_elsewhere(path: Path, keyring: LocalKeyring) -> None:
    """The server unwraps a DEK wrapped under a version it has not loaded yet."""
    server = LocalKeyring(path)
    keyring.add_version()
    version, blob = keyring.wrap(SID, DEK)
    assert server.unwrap(SID, version, blob) == DEK


def test_retire_keeps_the_active_and_wanted_versions(path: Path, keyring: LocalKeyring) -> None:
    """retire_versions removes unused versions, keeps those asked for, never the active one."""
    _, v1_blob = keyring.wrap(SID, DEK)
    keyring.add_version()
    keyring.add_version()
    assert keyring.retire_versions(keep={2}) == [1]
    assert keyring.versions() == [2, 3]
    assert keyring.retire_versions(keep=set()) == [2]
    assert keyring.versions() == [3]
    assert keyring.retire_versions(keep=set()) == []
    assert keyring.active_version() == 3
    with pytest.raises(DecryptionError):
        LocalKeyring(path).unwrap(SID, 1, v1_blob)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_keyring(tmp_path: Path) -> None:
    """Opening a keyring that does not exist raises KeyringError saying it is not readable."""
    with pytest.raises(KeyringError, match="not readable"):
        LocalKeyring(tmp_path / "nope.json")


def test_unreadable_keyring(tmp_path: Path) -> None:
    """A keyring path that cannot be read as a file raises KeyringError."""
    (tmp_path / "keyring.json").mkdir()
    with pytest.raises(KeyringError, match="not readable"):
        LocalKeyring(tmp_path / "keyring.json")


def _truncate(doc: dict, raw: str) -> str:
    return raw[: len(raw) // 2]


def _set(key: str, value: object):
    def change(doc: dict, raw: str) -> str:
        doc[key] = value
        return json.dumps(doc)

    return change


def _short_kek(doc: dict, raw: str) -> str:
    doc["keks"]["1"] = doc["keks"]["1"][:20]
    return json.dumps(doc)


def _bad_base64(doc: dict, raw: str) -> str:
    doc["keks"]["1"] = "!" + doc["keks"]["1"][1:]
    return json.dumps(doc)


def _no_index_key(doc: dict, raw: str) -> str:
    del doc["index_key"]
    return json.dumps(doc)


CORRUPTIONS = {
    "truncated json": _truncate,
    "unknown format": _set("format", 2),
    "active version missing": _set("active_kek", 7),
    "active version not a number": _set("active_kek", "one"),
    "keks not a mapping": _set("keks", ["x"]),
    "short kek": _short_kek,
    "bad base64": _bad_base64,
    "missing index key": _no_index_key,
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_malformed_keyring_error_reveals_no_key_material(
    path: Path, keyring: LocalKeyring, case: str
) -> None:
    """A corrupted keyring raises KeyringError whose message and cause chain hold no key."""
    secrets = _key_material(path)
    raw = path.read_text()
    path.write_text(CORRUPTIONS[case](json.loads(raw), raw))
    with pytest.raises(KeyringError) as info:
        LocalKeyring(path)
    full = "".join(traceback.format_exception(info.value))
    for secret in secrets:
        assert secret not in full
        assert secret[:12] not in full
