"""Checks on what a caller sends with a request: its type and channel, a DPO's free text,
and the payload each request type takes (anything else is `InvalidInput`, and nothing
changes)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from vault.catalogue.purposes import LawfulBasis
from vault.errors import InvalidInput
from vault.rights.free_text import clean_text
from vault.rights.requests.kinds import RequestType
from vault.storage.rows import canonical_id
from vault.subjects.contact import normalise_contact

if TYPE_CHECKING:
    from vault.context import VaultContext


MAX_PAYLOAD_BYTES = 16 * 1024


def parse_enum(kind: type[StrEnum], value: object, name: str) -> Any:
    """`value` as a member of `kind`, or `InvalidInput` naming the allowed values."""
    if isinstance(value, str):  # the members' values are text: nothing else can match
        try:
            return kind(value)
        except ValueError:
            pass
    raise InvalidInput(
        f"unknown {name}", {name: "must be one of " + ", ".join(m.value for m in kind)}
    )


def validate_payload(
    ctx: VaultContext, type_: RequestType, payload: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The payload a request type takes, checked; None when it takes none."""
    if payload is not None and not isinstance(payload, dict):
        raise InvalidInput("payload must be an object", {"payload": "must be an object"})
    if type_ is RequestType.RECTIFICATION:
        changes = (payload or {}).get("changes")
        if set(payload or {}) - {"changes"} or not isinstance(changes, dict) or not changes:
            raise InvalidInput(
                "a rectification names the corrected data",
                {"payload.changes": "must map at least one contact field to its new value"},
            )
        try:
            normalise_contact(changes)  # same rules as PATCH /contact; raises InvalidInput
        except InvalidInput as exc:
            raise InvalidInput(
                "the corrected data is invalid",
                {f"payload.changes.{k}": v for k, v in exc.errors.items()},
            ) from None
        out: dict[str, Any] = {"changes": changes}
    elif type_ is RequestType.CONSENT_WITHDRAWAL:
        out = {}
        for key, check in (("consent_ids", _is_id), ("purposes", ctx.catalogue.__contains__)):
            value = (payload or {}).get(key)
            if value is None:
                continue
            if (
                not isinstance(value, list)
                or not value
                or len(value) > 100
                or not all(isinstance(v, str) and check(v) for v in value)
            ):
                what = "consent ids" if key == "consent_ids" else "purpose ids of the catalogue"
                raise InvalidInput(
                    "the consents to withdraw are invalid",
                    {f"payload.{key}": f"must be a list of 1 to 100 {what}"},
                )
            out[key] = sorted(set(value))
        if set(payload or {}) - {"consent_ids", "purposes"}:
            raise InvalidInput(
                "unknown payload member",
                {"payload": "takes only consent_ids and purposes (none: every consent)"},
            )
    elif type_ is RequestType.LEGITIMATE_INTEREST_OBJECTION:
        out = _objection_payload(ctx, payload)
    else:
        if payload:
            raise InvalidInput(
                f"a {type_.value} request takes no payload", {"payload": "must be empty"}
            )
        return None
    if len(json.dumps(out, ensure_ascii=False).encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInput("payload is too large", {"payload": "must be at most 16 KiB"})
    return out or None


def _is_id(value: str) -> bool:
    """A consent id as stored: the withdrawal matches the rows by it unchanged."""
    return canonical_id(value) == value


def _objection_payload(ctx: VaultContext, payload: dict[str, Any] | None) -> dict[str, Any]:
    """Art. 21(1): the legitimate-interest purposes objected to (required) and the grounds
    relating to the subject's particular situation (optional free text, sealed)."""
    if set(payload or {}) - {"purposes", "grounds"}:
        raise InvalidInput("unknown payload member", {"payload": "takes only purposes and grounds"})
    value = (payload or {}).get("purposes")
    if (
        not isinstance(value, list)
        or not value
        or len(value) > 50
        or not all(isinstance(v, str) and _legitimate_interest(ctx, v) for v in value)
    ):
        raise InvalidInput(
            "the purposes objected to are invalid",
            {"payload.purposes": "must list 1 to 50 legitimate-interest purposes of the catalogue"},
        )
    out: dict[str, Any] = {"purposes": sorted(set(value))}
    grounds = clean_text((payload or {}).get("grounds"), "payload.grounds", required=False)
    if grounds:
        out["grounds"] = grounds
    return out


def _legitimate_interest(ctx: VaultContext, purpose_id: str) -> bool:
    purpose = ctx.catalogue.get(purpose_id)
    return purpose is not None and purpose.lawful_basis is LawfulBasis.LEGITIMATE_INTEREST
