"""Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme").

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
`v1,` + base64(HMAC-SHA256(secret, content)); several signatures (one per valid secret,
during a rotation) are separated by spaces in one `webhook-signature` header. Secrets are
shown to a recipient as `whsec_` + base64(key). HMAC and constant-time comparison come from
`vault.crypto` (`Mac`, `same_digest`); nothing here is a primitive of its own.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping, Sequence

from vault.crypto import Mac, same_digest

PREFIX = "whsec_"
#: A receiver refuses a timestamp further than this from its clock (replay window).
TOLERANCE_SECONDS = 300


def new_key() -> bytes:
    return secrets.token_bytes(32)


def encode_secret(key: bytes) -> str:
    return PREFIX + base64.b64encode(key).decode("ascii")


def decode_secret(secret: str) -> bytes:
    raw = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    return base64.b64decode(raw, validate=True)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(Mac(key).tag(content)).decode("ascii")


def headers(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every key given."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(k, msg_id, timestamp, body) for k in keys),
    }


def header_block(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The request's headers after the request line and Host, through the blank line, as
    bytes for the wire: the three signed headers, `content-type` and `content-length`.
    The id goes into a header as it is, so it must be a plain token (delivery ids are
    UUIDs); anything else is refused rather than sent."""
    if not (msg_id.isascii() and msg_id.isprintable()) or " " in msg_id or not msg_id:
        raise ValueError("a webhook id must be a printable ASCII token")
    signature = " ".join([sign(k, msg_id, timestamp, body) for k in keys])
    return (
        f"webhook-id: {msg_id}\r\nwebhook-timestamp: {timestamp}\r\n"
        f"webhook-signature: {signature}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode("ascii")


class VerificationError(Exception):
    """A payload whose signature or timestamp does not verify (never says which)."""


def verify(key: bytes, headers_: Mapping[str, str], body: bytes, now: int) -> str:
    """The webhook-id if one `v1` signature matches and the timestamp is fresh; else
    `VerificationError`. What a receiver runs (examples/receiver uses it)."""
    try:
        msg_id = headers_["webhook-id"]
        timestamp = int(headers_["webhook-timestamp"])
        given = headers_["webhook-signature"].split(" ")
    except (KeyError, ValueError):
        raise VerificationError("bad signature") from None
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise VerificationError("bad signature")
    expected = sign(key, msg_id, timestamp, body)
    if not any(same_digest(expected, g) for g in given if g.startswith("v1,")):
        raise VerificationError("bad signature")
    return msg_id
