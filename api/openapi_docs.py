"""Shared OpenAPI response declarations, so every documented error is problem+json; and
the API documents' pages (Swagger UI, ReDoc) served from the package's own files.

The pages must work without internet (an operator's laptop on the vault's network, an
air-gapped installation): Swagger UI's and ReDoc's standalone bundles are vendored under
`api/static/` with their licences (the PyPI package `swagger-ui-bundle` ships Swagger UI
4, which cannot read OpenAPI 3.1) and served under `/schema/assets/`; no page loads
anything from elsewhere (no CDN, no web fonts, no icon).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
)
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Parameter,
    Reference,
    Schema,
)
from litestar.static_files import create_static_files_router

from api.operation_texts import DESCRIPTIONS
from api.schemas import Problem
from vault.subjects.decision import DenyReason

_DESCRIPTIONS = {
    400: "The body is not JSON (malformed, empty, or nested deeper than 64 levels); nothing "
    "changed",
    401: "Missing or invalid API key",
    403: "Role or purpose check denied the request (see `reason`)",
    404: "Not found",
    409: "Conflicts with the stored state; nothing changed",
    412: "`If-Match` names another state than the stored one (`reason` "
    "precondition_failed): someone changed it since; read it again. Nothing changed",
    413: "Request body larger than 64 KiB; nothing changed",
    422: "Invalid input: every failing field is listed in `errors`, a body field by its JSON "
    "Pointer (`/evidence/method`), a parameter by its name; nothing changed",
    428: "`If-Match` missing: this update needs the `ETag` of the state it replaces",
    429: "Too many attempts (failed authentications or sign-in codes) or the client's quota "
    "is used up; see Retry-After (and RateLimit / RateLimit-Policy for a quota)",
    500: "Stored data failed an integrity check (`reason` integrity_error): nothing "
    "revealed, the attempt audited",
    503: "Storage, audit, keyring or mailer unavailable; nothing revealed or changed",
}


def problems(
    *codes: int, reasons: Mapping[int, Iterable[str]] | None = None
) -> dict[int, ResponseSpec]:
    """The problem+json answers of an operation; `reasons` lists, per status, every
    `reason` the operation may answer with (issue 17: a client must not learn them from
    the answers)."""
    reasons = reasons or {}
    return {
        code: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS[code]
            + (
                "; `reason` one of: " + ", ".join(f"`{r}`" for r in reasons[code])
                if code in reasons
                else ""
            ),
            media_type="application/problem+json",
            generate_examples=False,
        )
        for code in codes
    }


AUTHED = (400, 401, 403, 429, 503)

#: Why a purpose-checked read (lookup, batch line, contact record) is refused with 403.
READ_DENIALS = tuple(
    str(r)
    for r in DenyReason
    if r
    not in (
        DenyReason.SUBJECT_NOT_FOUND,
        DenyReason.AUDIENCE_TOO_SMALL,
        DenyReason.INTEGRITY_ERROR,
    )
)
#: The refusals of a conditional update (`api.conditional`) and of a change to an erased
#: subject.
UPDATE_REASONS = {
    404: (str(DenyReason.SUBJECT_NOT_FOUND),),
    412: ("precondition_failed",),
    428: ("precondition_required",),
}

#: `security` of public operations. Litestar drops an empty list, so the operation would
#: inherit the document-wide API-key requirement; one empty requirement (`[{}]`) declares
#: "no credentials needed" in OpenAPI terms.
PUBLIC: list[dict[str, list[str]]] = [{}]


_STATIC = Path(__file__).resolve().parent / "static"
#: Swagger UI (Apache-2.0) from the npm package `swagger-ui-dist`, ReDoc (MIT) from the npm
#: package `redoc`: the standalone files and their licences, unchanged.
SWAGGER_DIR = _STATIC / "swagger-ui-5.35.0"
REDOC_DIR = _STATIC / "redoc-2.5.4"
_ASSETS = "/schema/assets"


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """`/schema/openapi.json`, `/schema/swagger` and `/schema/redoc`, their scripts and
    styles from `/schema/assets/`."""
    swagger = f"{_ASSETS}/swagger-ui"
    return [
        JsonRenderPlugin(),
        SwaggerRenderPlugin(
            path="/swagger",
            js_url=f"{swagger}/swagger-ui-bundle.js",
            css_url=f"{swagger}/swagger-ui.css",
            standalone_preset_js_url=f"{swagger}/swagger-ui-standalone-preset.js",
            favicon="",  # Litestar's default icon is on a CDN
        ),
        RedocRenderPlugin(
            path="/redoc",
            js_url=f"{_ASSETS}/redoc/redoc.standalone.js",
            google_fonts=False,
            favicon="",
        ),
    ]


def asset_routers(**options: Any) -> list[Any]:
    """The static files behind the documents' pages, relative to the `/schema` router."""
    return [
        create_static_files_router(
            path="/assets/swagger-ui",
            directories=[SWAGGER_DIR],
            include_in_schema=False,
            **options,
        ),
        create_static_files_router(
            path="/assets/redoc", directories=[REDOC_DIR], include_in_schema=False, **options
        ),
    ]


_REQUEST_ID_TEXT = (
    "Correlates this request with the server's log line and the problem's `instance`: a "
    "caller's own id (1-64 letters, digits, `.`, `_`, `-`) is kept, anything else replaced "
    "by a new random one. Never put personal data into it."
)
#: What the server sends back. What it takes is any string: one not of this form is
#: replaced, not refused, so the parameter declares no pattern.
_REQUEST_ID_SCHEMA = Schema(type=OpenAPIType.STRING, pattern="^[A-Za-z0-9._-]{1,64}$")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def document_operations(document: OpenAPI) -> None:
    """The description of each operation whose handler gives none (`api.operation_texts`)."""
    for item in (document.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is not None and not operation.description:
                operation.description = DESCRIPTIONS.get(operation.operation_id or "")


def document_validation_answers(document: OpenAPI) -> None:
    """Validation failures are 422 wherever the client sends something the server checks
    (a body or a parameter); 400 is only a body that is not JSON, so only operations that
    take a body list it. Declared centrally, so no operation can list one and not the other."""
    for item in (document.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses = operation.responses or {}
            checked = [
                p for p in operation.parameters or [] if getattr(p, "name", "") != "X-Request-ID"
            ]
            if operation.request_body is None:
                responses.pop("400", None)
            else:
                responses["400"] = _problem_response(400)
            if operation.request_body is not None or checked or "422" in responses:
                responses["422"] = _problem_response(422, responses.get("422"))


def _problem_response(status: int, declared: Any = None) -> OpenAPIResponse:
    """The problem+json answer for `status`; the `reason`s an operation declared are kept."""
    description = _DESCRIPTIONS[status]
    text = getattr(declared, "description", None) or ""
    if "; `reason` one of:" in text:
        description += text[text.index("; `reason` one of:") :]
    return OpenAPIResponse(
        description=description,
        content={
            "application/problem+json": OpenAPIMediaType(
                schema=Reference(ref="#/components/schemas/Problem")
            )
        },
    )


def document_request_id(document: OpenAPI) -> None:
    """Every operation takes an optional `X-Request-ID` and every answer carries one
    (`api.logging` assigns it to each request, problems name it as `instance`)."""
    components = document.components = document.components or Components()
    components.headers = {
        **(components.headers or {}),
        "X-Request-ID": OpenAPIHeader(description=_REQUEST_ID_TEXT, schema=_REQUEST_ID_SCHEMA),
    }
    components.parameters = {
        **(components.parameters or {}),
        "X-Request-ID": Parameter(
            name="X-Request-ID",
            param_in=ParamType.HEADER,
            required=False,
            description=_REQUEST_ID_TEXT,
            schema=Schema(type=OpenAPIType.STRING),
        ),
    }
    parameter = Reference(ref="#/components/parameters/X-Request-ID")
    header = Reference(ref="#/components/headers/X-Request-ID")
    for item in (document.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is None:
                continue
            names = {getattr(p, "name", "").lower() for p in operation.parameters or []}
            if "x-request-id" not in names:
                operation.parameters = [*(operation.parameters or []), parameter]
            for response in (operation.responses or {}).values():
                if isinstance(response, OpenAPIResponse):
                    response.headers = {**(response.headers or {}), "X-Request-ID": header}
