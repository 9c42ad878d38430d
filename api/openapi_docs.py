"""Shared OpenAPI response declarations, so every documented error is problem+json."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from api.schemas import Problem

_DESCRIPTIONS = {
    400: "Malformed request; nothing changed",
    401: "Missing or invalid API key",
    403: "Role or purpose check denied the request (see `reason`)",
    404: "Not found",
    409: "Conflicts with the stored state; nothing changed",
    413: "Request body larger than 64 KiB; nothing changed",
    422: "A field breaks a domain rule; nothing changed",
    429: "Too many attempts (failed authentications or sign-in codes) or the client's quota "
    "is used up; see Retry-After (and RateLimit / RateLimit-Policy for a quota)",
    500: "Stored data failed an integrity check (`reason` integrity_error): nothing "
    "revealed, the attempt audited",
    503: "Storage, audit, keyring or mailer unavailable; nothing revealed or changed",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    return {
        code: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS[code],
            media_type="application/problem+json",
            generate_examples=False,
        )
        for code in codes
    }


AUTHED = (400, 401, 403, 429, 503)

#: `security` of public operations. Litestar drops an empty list, so the operation would
#: inherit the document-wide API-key requirement; one empty requirement (`[{}]`) declares
#: "no credentials needed" in OpenAPI terms.
PUBLIC: list[dict[str, list[str]]] = [{}]
