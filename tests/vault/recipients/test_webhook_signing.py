"""Standard Webhooks signatures: what Tresor signs verifies with the reference receiver's
independent check, and a bad or stale signature is refused by both."""

from __future__ import annotations

import base64
import hmac

import pytest

from examples.receiver.app import BadSignature
from examples.receiver.app import verify as receiver_verify
from vault.recipients import signing

KEY = bytes(range(32))
BODY = b'{"type":"subject.erased","data":{"subject_id":"s"}}'


def test_signature_follows_the_specification():
    """The signature is `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")), computed
    here by hand from the specification's words."""
    expected = base64.b64encode(
        hmac.new(KEY, b"msg_1.1674087231." + BODY, "sha256").digest()
    ).decode()
    assert signing.sign(KEY, "msg_1", 1674087231, BODY) == "v1," + expected


def test_secret_round_trip():
    """A secret is shown as whsec_ + base64 and decodes to the same key."""
    text = signing.encode_secret(KEY)
    assert text.startswith("whsec_")
    assert signing.decode_secret(text) == KEY


def test_two_secrets_during_a_rotation_both_verify():
    """Signed with the new and the old key, a notice verifies with either one."""
    new = signing.new_key()
    headers = signing.headers([new, KEY], "msg_2", 1000, BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert receiver_verify([KEY], headers, BODY, now=1000) == "msg_2"
    assert receiver_verify([new], headers, BODY, now=1000) == "msg_2"
    assert signing.verify(KEY, headers, BODY, now=1000) == "msg_2"


@pytest.mark.parametrize(
    "tamper",
    ["body", "id", "timestamp", "key", "stale", "missing", "v2"],
)
def test_bad_or_stale_signatures_are_refused(tamper: str):
    """A changed body, id or timestamp, another key, a timestamp over five minutes old, a
    missing header or an unknown version are refused by the receiver and by Tresor's own
    verify."""
    headers = signing.headers([KEY], "msg_3", 1000, BODY)
    body, now, key = BODY, 1000, KEY
    if tamper == "body":
        body = BODY.replace(b"erased", b"rectified")
    elif tamper == "id":
        headers["webhook-id"] = "msg_4"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = "1001"
    elif tamper == "key":
        key = signing.new_key()
    elif tamper == "stale":
        now = 1000 + signing.TOLERANCE_SECONDS + 1
    elif tamper == "missing":
        del headers["webhook-signature"]
    elif tamper == "v2":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    with pytest.raises(BadSignature):
        receiver_verify([key], headers, body, now=now)
    with pytest.raises(signing.VerificationError):
        signing.verify(key, headers, body, now=now)


def test_the_wire_header_block_matches_the_headers_and_refuses_a_bad_id():
    """The bytes sent on the wire carry the same signed headers as `headers`, the content
    type and length, and end the header section; an id that could break a header line
    (CR/LF, space, non-ASCII, empty) is refused rather than sent."""
    block = signing.header_block([KEY], "msg_3", 1000, BODY)
    assert block.endswith(b"\r\n\r\n")
    lines = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if line)
    assert lines == signing.headers([KEY], "msg_3", 1000, BODY) | {
        "content-type": "application/json",
        "content-length": str(len(BODY)),
    }
    for bad in ("msg\r\nx-evil: 1", "msg 4", "msg_é", ""):
        with pytest.raises(ValueError):
            signing.header_block([KEY], bad, 1000, BODY)
