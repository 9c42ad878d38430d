"""Contact preferences set by writer clients on the customer's instruction (with evidence),
and the JSON shapes the privacy centre shares (`/self/v1/preferences`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.params import JSONBody

from api.auth import actor_of, roles
from api.bases.schemas import evidence_of
from api.conditional import (
    PREFERENCES,
    ConditionalOperation,
    etag,
    etag_header,
    if_match,
)
from api.deps import Vault
from api.i18n import text_for
from api.openapi_docs import AUTHED, UPDATE_REASONS, problems
from api.outreach.schemas import (
    PreferenceHistoryOut,
    PreferencesIn,
    PreferencesOut,
    PreferencesUpdate,
    QuietTimesOut,
)
from api.schemas import Uuid, uuid_path
from vault.admin.clients import Role
from vault.context import VaultContext
from vault.outreach import preference_changes, preferences
from vault.outreach.preference_changes import PreferencesView


def preferences_raw(data: PreferencesIn) -> dict[str, Any]:
    """The domain's input document (without evidence)."""
    raw = msgspec.to_builtins(data)
    raw.pop("evidence", None)
    return dict(raw)


def preferences_out(vault: VaultContext, view: PreferencesView) -> PreferencesOut:
    p = view.preferences
    doc = p.to_json() if p is not None else {}
    return PreferencesOut(
        subject_id=view.subject_id,
        version=p.version if p is not None else 0,
        timezone=p.timezone if p is not None else None,
        preferred_channels=doc.get("preferred_channels", {}),
        quiet={c: QuietTimesOut(**q) for c, q in doc.get("quiet", {}).items()},
        monthly_cap_points=p.monthly_cap_points if p is not None else None,
        basket_points=vault.pressure_rules.basket_points,
        updated_at=p.updated_at if p is not None else None,
        history=[
            PreferenceHistoryOut(
                version=h.version,
                at=h.at,
                actor=h.actor,
                source=h.source,
                touchpoint=h.touchpoint,
                method=h.method,
                notice_version=h.notice_version,
                language=h.language,
                preferences=h.preferences,
            )
            for h in view.history
        ],
    )


def _tagged(out: PreferencesOut) -> Response[PreferencesOut]:
    return Response(out, headers={"ETag": etag(PREFERENCES, out.version)})


class PreferenceController(Controller):
    path = "/v1/subjects/{subject_id:str}/preferences"
    tags = ["preferences"]

    @get(
        "/",
        opt=roles(Role.WRITER, Role.DPO),
        operation_id="getPreferences",
        response_headers=etag_header("The preferences' state, for `If-Match` on the PUT"),
        summary="A customer's contact preferences and their history (audited read)",
        responses=problems(*AUTHED, 404),
    )
    async def get_(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        subject_id: Uuid = uuid_path("The subject's pseudonymous id"),
    ) -> Response[PreferencesOut]:
        view = await preference_changes.get_preferences(vault, actor_of(request), subject_id)
        return _tagged(preferences_out(vault, view))

    @put(
        "/",
        opt=roles(Role.WRITER),
        operation_id="setPreferences",
        operation_class=ConditionalOperation,
        response_headers=etag_header("The preferences' new state"),
        summary="Replace a customer's contact preferences on the customer's instruction",
        description=(
            "Preferred channel per communication type, quiet hours and days per channel in "
            "the customer's IANA time zone, and an own monthly cap in points. The cap can "
            "only lower the company basket: a value above it is rejected (422) and nothing "
            "changes. `evidence` of the instruction is required, as for a consent. Every "
            "change is kept in the history and audited. Requires `If-Match` with the "
            '`ETag` of the GET (or of the last PUT; `"preferences-r0"` while none are '
            "set): 428 without it, 412 when they changed since."
        ),
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 412, 413, 422, 428, reasons=UPDATE_REASONS),
    )
    async def set_(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PreferencesUpdate],
        vault: Vault,
        subject_id: Uuid = uuid_path("The subject's pseudonymous id"),
    ) -> Response[PreferencesOut]:
        evidence = evidence_of(data.evidence)
        view = await preference_changes.set_preferences(
            vault,
            actor_of(request),
            subject_id,
            preferences_raw(data),
            source="client",
            evidence=evidence,
            if_match=if_match(request, PREFERENCES),
        )
        return _tagged(preferences_out(vault, view))


# ---------------------------------------------------------------------------- web form

_CAP_RE = r"^\d{1,6}([.,]\d)?$"


def form_document(form: Any, channels: Collection[str]) -> dict[str, Any]:
    """The preferences document from the privacy-centre form (empty inputs mean "none");
    `channels`: every channel of the rules, the declared ones included."""
    import re

    def value(name: str, limit: int = 64) -> str:
        v = form.get(name)
        return v.strip()[:limit] if isinstance(v, str) else ""

    doc: dict[str, Any] = {"timezone": value("timezone"), "preferred_channels": {}, "quiet": {}}
    for ty in preferences.TYPES:
        chosen = value(f"preferred_{ty}", 16)
        if chosen:
            doc["preferred_channels"][ty] = chosen
    for c in channels:
        start, end = value(f"quiet_{c}_start", 8) or None, value(f"quiet_{c}_end", 8) or None
        days = [d for d in form.getall(f"quiet_{c}_days", [])[:7] if isinstance(d, str)]
        if start or end or days:
            doc["quiet"][c] = {"start": start, "end": end, "days": days}
    cap = value("monthly_cap_points", 12)
    if cap:
        # Not a number at all: keep it as text so the domain names the field as invalid.
        doc["monthly_cap_points"] = float(cap.replace(",", ".")) if re.match(_CAP_RE, cap) else cap
    return doc


def form_errors(
    errors: Mapping[str, str], texts: Mapping[str, str], labels: Mapping[str, str]
) -> list[str]:
    """Customer-facing messages for the domain's field errors (never echoing input);
    `labels`: the channels' names (`channel_labels`)."""
    out: list[str] = []
    for key in errors:
        if key == "timezone":
            msg = texts["pc_pref_err_timezone"]
        elif key.startswith("quiet"):
            channel = key.split(".")[1] if "." in key else ""
            label = labels.get(channel, "")
            msg = (label + ": " if label else "") + texts["pc_pref_err_quiet"]
        elif key == "monthly_cap_points":
            msg = texts["pc_pref_err_cap"]
        else:
            msg = texts["pc_pref_err_other"]
        if msg not in out:
            out.append(msg)
    return out


def channel_labels(vault: VaultContext, lang: str) -> dict[str, str]:
    """Every channel of the rules with its name in `lang`: a declared channel's from the
    rules (`[channel.<id>] name`), a built-in one's from the UI catalogue."""
    rules = vault.pressure_rules
    return {
        c: rules.channel_name(c, lang) or text_for(lang, "pc_pref_channel_", c)
        for c in rules.channels
    }


def page_context(
    vault: VaultContext, view: PreferencesView, doc: dict[str, Any] | None, lang: str
) -> dict[str, Any]:
    """What `privacy_preferences.html` needs: the document to show (the stored one, or the
    rejected input), the vocabularies (every channel of the rules, with its name in
    `lang`) and the history."""
    if doc is None:
        doc = (
            view.preferences.to_json()
            if view.preferences is not None
            else {
                "timezone": "Europe/Berlin",
                "preferred_channels": {},
                "quiet": {},
                "monthly_cap_points": None,
            }
        )
    cap = doc.get("monthly_cap_points")
    zones = preferences.zone_names()
    # A zone set elsewhere (e.g. by a client) stays selectable, so saving keeps it.
    if preferences.valid_zone(doc.get("timezone")) and doc["timezone"] not in zones:
        zones = [doc["timezone"], *zones]
    return {
        "doc": {**doc, "monthly_cap_points": cap if isinstance(cap, int | float) else None},
        "zones": zones,
        "types": preferences.TYPES,
        "channels": channel_labels(vault, lang),
        "days": preferences.DAYS,
        "basket": f"{vault.pressure_rules.basket_points:g}",
        "history": view.history,
    }
