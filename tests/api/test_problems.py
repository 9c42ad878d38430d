"""Bad input: a clear problem+json 4xx, no 500, nothing changed, nothing echoed."""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import pytest

from tests.support.factories import NEWSLETTER_EVIDENCE, api, bearer, client_key, person
from tests.support.privacy import assert_problem, row_counts

SECRET_VALUES = {
    "email": "geheim.echo.7731@example.net",
    "phone": "+49 40 55512345",
    "name": "Echo Geheimnisträger",
}


def _echoed(text: str, values: dict[str, Any]) -> list[str]:
    """Submitted contact values (or recognisable parts of them) found in `text`."""
    hits = []
    low = text.lower()
    for value in values.values():
        if not isinstance(value, str) or len(value) < 6:
            continue
        candidates = {value, value.replace(" ", ""), value.split("@")[0]}
        candidates |= {part for part in re.split(r"[\s@]+", value) if len(part) >= 6}
        hits += [c for c in candidates if c.lower() in low]
    return hits


def _bad_requests(sid: str) -> list[tuple[str, str, str, dict[str, Any], int | tuple[int, ...]]]:
    """(label, method, path, httpx kwargs, expected status) for each kind of bad input."""
    good = dict(SECRET_VALUES)
    return [
        (
            "malformed JSON",
            "POST",
            "/v1/subjects",
            {
                "content": b'{"email": "geheim.echo.7731@example.net", "name": ',
                "headers": {"content-type": "application/json"},
            },
            400,
        ),
        (
            "not JSON at all",
            "POST",
            "/v1/subjects",
            {
                "content": b"email=geheim.echo.7731@example.net",
                "headers": {"content-type": "application/json"},
            },
            400,
        ),
        ("wrong type", "POST", "/v1/subjects", {"json": {**good, "phone": 4940555123}}, 422),
        (
            "wrong type nested",
            "POST",
            "/v1/subjects",
            {"json": {**good, "postal_address": "Hauptstraße 1, 20095 Hamburg"}},
            422,
        ),
        ("unknown field", "POST", "/v1/subjects", {"json": {**good, "shoe_size": 44}}, 422),
        (
            "over-long name",
            "POST",
            "/v1/subjects",
            {"json": {**good, "name": "Echo Geheimnisträger " * 20}},
            422,
        ),
        (
            "over-long email",
            "POST",
            "/v1/subjects",
            {"json": {**good, "email": "g" * 320 + "@example.net"}},
            422,
        ),
        (
            "invalid e-mail",
            "POST",
            "/v1/subjects",
            {"json": {**good, "email": "geheim.echo.7731(at)example.net"}},
            422,
        ),
        ("invalid phone", "POST", "/v1/subjects", {"json": {**good, "phone": "+49 40 5"}}, 422),
        (
            "phone letters",
            "POST",
            "/v1/subjects",
            {"json": {**good, "phone": "Echo Geheimnisträger"}},
            422,
        ),
        (
            "missing postal fields",
            "POST",
            "/v1/subjects",
            {"json": {**good, "postal_address": {"street": "Hauptstraße 1", "city": "Hamburg"}}},
            422,
        ),
        (
            "blank postal field",
            "POST",
            "/v1/subjects",
            {
                "json": {
                    **good,
                    "postal_address": {
                        "street": "  ",
                        "postal_code": "20095",
                        "city": "Hamburg",
                        "country": "DE",
                    },
                }
            },
            422,
        ),
        (
            "bad country",
            "POST",
            "/v1/subjects",
            {
                "json": {
                    **good,
                    "postal_address": {
                        "street": "Hauptstraße 1",
                        "postal_code": "20095",
                        "city": "Hamburg",
                        "country": "4x",
                    },
                }
            },
            422,
        ),
        (
            "control characters",
            "POST",
            "/v1/subjects",
            {"json": {**good, "name": "Echo\u0000Geheimnisträger"}},
            422,
        ),
        (
            "body over 64 KiB",
            "POST",
            "/v1/subjects",
            {"json": {**good, "padding": "x" * (70 * 1024)}},
            413,
        ),
        ("empty object", "POST", "/v1/subjects", {"json": {}}, 422),
        ("all null", "POST", "/v1/subjects", {"json": {"email": None, "name": None}}, 422),
        (
            "empty body",
            "POST",
            "/v1/subjects",
            {"content": b"", "headers": {"content-type": "application/json"}},
            400,
        ),
        ("JSON array body", "POST", "/v1/subjects", {"json": [good]}, 422),
        (
            "rectify invalid e-mail",
            "PATCH",
            f"/v1/subjects/{sid}/contact",
            {"json": {"email": "geheim.echo.7731@"}},
            422,
        ),
        ("rectify nothing", "PATCH", f"/v1/subjects/{sid}/contact", {"json": {}}, 422),
        (
            "rectify unknown subject",
            "PATCH",
            "/v1/subjects/00000000-0000-4000-8000-000000000000/contact",
            {"json": {"name": "Echo Geheimnisträger"}},
            404,
        ),
        (
            "invalid subject_id path",
            "PATCH",
            "/v1/subjects/not-a-uuid/contact",
            {"json": {"name": "Echo Geheimnisträger"}},
            422,
        ),
        (
            "e-mail as subject_id path",
            "GET",
            "/v1/subjects/geheim.echo.7731@example.net/consents",
            {},
            422,
        ),
        (
            "unknown purpose",
            "POST",
            f"/v1/subjects/{sid}/consents",
            {"json": {"purpose": "no.such.purpose", "reference": "x"}},
            422,
        ),
        (
            "consent without evidence",
            "POST",
            f"/v1/subjects/{sid}/consents",
            {"json": {"purpose": "offers.phone"}},
            422,
        ),
        (
            "phone consent not explicit",
            "POST",
            f"/v1/subjects/{sid}/consents",
            {
                "json": {
                    "purpose": "offers.phone",
                    "evidence": {**NEWSLETTER_EVIDENCE, "ip": "198.51.100.9"},
                }
            },
            422,
        ),
        (
            "bad evidence method",
            "POST",
            f"/v1/subjects/{sid}/consents",
            {
                "json": {
                    "purpose": "newsletter.email",
                    "evidence": {**NEWSLETTER_EVIDENCE, "method": "telepathy"},
                }
            },
            422,
        ),
        (
            "evidence touchpoint not in the catalogue",
            "POST",
            f"/v1/subjects/{sid}/consents",
            {
                "json": {
                    "purpose": "newsletter.email",
                    "evidence": {**NEWSLETTER_EVIDENCE, "touchpoint": "shop.counter.berlin"},
                }
            },
            422,
        ),
        (
            "expiry in the past",
            "POST",
            f"/v1/subjects/{sid}/consents",
            {
                "json": {
                    "purpose": "order.delivery",
                    "reference": "o-1",
                    "expires_at": "2001-01-01T00:00:00Z",
                }
            },
            422,
        ),
        (
            "contract without reference",
            "POST",
            f"/v1/subjects/{sid}/consents",
            {"json": {"purpose": "order.delivery"}},
            422,
        ),
        (
            "consent on unknown subject",
            "POST",
            "/v1/subjects/00000000-0000-4000-8000-000000000000/consents",
            {"json": {"purpose": "order.delivery", "reference": "o-1"}},
            404,
        ),
        (
            "withdraw unknown consent",
            "POST",
            f"/v1/subjects/{sid}/consents/00000000-0000-4000-8000-000000000000/withdraw",
            {},
            404,
        ),
        ("withdraw bad consent id", "POST", f"/v1/subjects/{sid}/consents/123/withdraw", {}, 422),
        (
            "confirm unknown token",
            "POST",
            "/v1/consents/confirm",
            {"json": {"token": "A" * 43}},
            404,
        ),
        ("confirm without token", "POST", "/v1/consents/confirm", {"json": {}}, 422),
        (
            "client with bad name",
            "POST",
            "/v1/clients",
            {"json": {"name": "Geheim Echo", "role": "writer"}},
            422,
        ),
        (
            "client with bad role",
            "POST",
            "/v1/clients",
            {"json": {"name": "geheim", "role": "superuser"}},
            422,
        ),
        (
            "client with unknown purpose",
            "POST",
            "/v1/clients",
            {"json": {"name": "geheim", "role": "lookup", "purposes": ["no.such.purpose"]}},
            422,
        ),
        ("revoke unknown client", "POST", "/v1/clients/nobody-here/revoke", {}, 404),
    ]


def _lookup_requests() -> list[tuple[str, dict[str, Any], int]]:
    return [
        (
            "two identifiers",
            {
                "purpose": "order.delivery",
                "email": SECRET_VALUES["email"],
                "phone": SECRET_VALUES["phone"],
            },
            422,
        ),
        ("no identifier", {"purpose": "order.delivery"}, 422),
        (
            "invalid e-mail identifier",
            {"purpose": "order.delivery", "email": "geheim.echo.7731-at-example.net"},
            422,
        ),
        ("invalid phone identifier", {"purpose": "order.delivery", "phone": "0000"}, 422),
        (
            "unknown field",
            {"purpose": "order.delivery", "email": SECRET_VALUES["email"], "fields": ["shoe_size"]},
            422,
        ),
        (
            "empty fields",
            {"purpose": "order.delivery", "email": SECRET_VALUES["email"], "fields": []},
            422,
        ),
        ("missing purpose", {"email": SECRET_VALUES["email"]}, 422),
        ("wrong type", {"purpose": "order.delivery", "external_ref": 12345}, 422),
        (
            "unknown member",
            {"purpose": "order.delivery", "email": SECRET_VALUES["email"], "reason": "curiosity"},
            422,
        ),
        ("unknown purpose", {"purpose": "no.such.purpose", "email": SECRET_VALUES["email"]}, 403),
    ]


async def test_bad_input_is_a_problem_and_changes_nothing(vault):
    """Every kind of bad input gets a 4xx problem+json naming no submitted value, never a
    500, and leaves subjects, consents, their history and clients untouched."""
    writer = await client_key(vault, "crm", "writer")
    admin = await client_key(vault, "ops", "admin")
    async with api(vault) as http:
        r = await http.post("/v1/subjects", json=person(11), headers=bearer(writer))
        assert r.status_code == 201, r.text
        sid = r.json()["subject_id"]
        before = await row_counts(vault)
        for label, method, path, kwargs, expected in _bad_requests(sid):
            key = admin if path.startswith("/v1/clients") else writer
            headers = {**bearer(key), **kwargs.pop("headers", {})}
            r = await http.request(method, path, headers=headers, **kwargs)
            assert r.status_code == expected, (label, r.status_code, r.text)
            body = assert_problem(r)
            assert 400 <= r.status_code < 500, (label, r.text)
            assert not _echoed(r.text, SECRET_VALUES), (label, r.text)
            assert not _echoed(json.dumps(dict(r.headers)), SECRET_VALUES), label
            assert body["instance"] == r.headers["x-request-id"], label
            assert await row_counts(vault) == before, label


async def test_bad_lookups_are_problems_that_change_nothing(vault):
    """Malformed lookups (two identifiers, invalid identifiers, unknown members or purposes)
    get a 4xx problem+json that echoes no identifier and changes no stored data."""
    lookup = await client_key(vault, "shop", "lookup", ["order.delivery"])
    async with api(vault) as http:
        before = await row_counts(vault)
        for label, body, expected in _lookup_requests():
            r = await http.post("/v1/lookup", json=body, headers=bearer(lookup))
            assert r.status_code == expected, (label, r.text)
            assert_problem(r)
            assert not _echoed(r.text, SECRET_VALUES), (label, r.text)
        assert await row_counts(vault) == before


async def test_unknown_evidence_touchpoint_names_the_field_and_stores_nothing(vault):
    """A consent whose evidence names a touchpoint outside the catalogue is a 422 problem
    naming `evidence.touchpoint`, and no consent, history or audit row appears."""
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=person(12), headers=bearer(writer))).json()[
            "subject_id"
        ]
        before = await row_counts(vault)
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={
                "purpose": "newsletter.email",
                "evidence": {**NEWSLETTER_EVIDENCE, "touchpoint": "shop.counter.berlin"},
            },
            headers=bearer(writer),
        )
        body = assert_problem(r, 422)
        assert body["errors"] == [
            {"field": "/evidence/touchpoint", "message": "is not in the touchpoint catalogue"}
        ]
        assert await row_counts(vault) == before


async def test_bad_input_on_public_confirmation_endpoint_is_a_problem(vault):
    """The unauthenticated confirmation endpoint answers bad bodies with problem+json: 400 for
    a body that is not JSON, 422 for a JSON body that breaks the schema."""
    async with api(vault) as http:
        for content, status in (
            (b"{", 400),
            (b'{"token": 5}', 422),
            (b'{"token": ""}', 422),
            (b'{"token": "x", "y": 1}', 422),
        ):
            r = await http.post(
                "/v1/consents/confirm",
                content=content,
                headers={"content-type": "application/json"},
            )
            assert_problem(r, status)


async def test_request_id_is_assigned_and_a_well_formed_one_echoed(vault):
    """Every response, errors included, carries X-Request-ID; a well-formed incoming id is
    kept, a malformed one (or one carrying data) is replaced."""
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        r = await http.get("/health")
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
        r = await http.get("/health", headers={"X-Request-ID": "req-4711.abc_DEF"})
        assert r.headers["x-request-id"] == "req-4711.abc_DEF"

        r = await http.post("/v1/subjects", json={"email": "xyz"}, headers=bearer(writer))
        assert r.status_code == 422 and r.headers["x-request-id"]
        assert r.json()["instance"] == r.headers["x-request-id"]

        r = await http.post(
            "/v1/subjects",
            json={"bogus": 1},
            headers={**bearer(writer), "X-Request-ID": "trace-0001"},
        )
        assert r.status_code == 422
        assert r.headers["x-request-id"] == "trace-0001"
        assert r.json()["instance"] == "trace-0001"

        r = await http.get("/v1/clients", headers={"X-Request-ID": "unauth-1"})
        assert r.status_code == 401 and r.headers["x-request-id"] == "unauth-1"

        # Requests that match no route never pass through middleware; they get an id too.
        r = await http.get("/v1/no-such-thing", headers={"X-Request-ID": "lost-1"})
        assert r.headers["x-request-id"] == "lost-1"
        assert assert_problem(r, 404)["instance"] == "lost-1"
        r = await http.delete("/v1/lookup", headers=bearer(writer))
        assert assert_problem(r, 405)["instance"] == r.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])

        for bad in ("geheim.echo.7731@example.net", "a b", "x" * 65, ""):
            r = await http.get("/health", headers={"X-Request-ID": bad})
            assert r.headers["x-request-id"] != bad
            assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


@pytest.mark.parametrize("size", [64 * 1024 - 100, 64 * 1024 + 1])
async def test_body_size_limit_is_64_kib(vault, size):
    """Bodies up to 64 KiB are read (and judged on content); larger ones get 413 problem+json."""
    writer = await client_key(vault, "crm", "writer")
    payload = json.dumps({"name": "n", "pad": ""}).encode()
    payload = payload.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(payload)) + b'"')
    assert len(payload) == size
    async with api(vault) as http:
        before = await row_counts(vault)
        r = await http.post(
            "/v1/subjects",
            content=payload,
            headers={**bearer(writer), "content-type": "application/json"},
        )
        assert_problem(r, 413 if size > 64 * 1024 else 422)
        assert await row_counts(vault) == before


#: (kind, role, method, path, httpx kwargs): one invalid field of each kind a validation
#: message could quote back, across several endpoints; `{m}` is replaced by the marker.
_ECHO_CASES = [
    ("enum in the body", "admin", "POST", "/v1/clients", {"json": {"name": "x", "role": "{m}"}}),
    (
        "enum in a list",
        "lookup",
        "POST",
        "/v1/lookup",
        {"json": {"purpose": "order.delivery", "subject_id": "s", "fields": ["{m}"]}},
    ),
    (
        "enum of a request type",
        "dpo",
        "POST",
        "/v1/requests",
        {
            "json": {
                "subject_id": "00000000-0000-4000-8000-000000000000",
                "type": "{m}",
                "channel": "letter",
            }
        },
    ),
    ("enum in the query", "dpo", "GET", "/v1/requests?type={m}", {}),
    ("enum in another query", "dpo", "GET", "/v1/audit/stats?bucket={m}", {}),
    ("integer in the query", "dpo", "GET", "/v1/requests?limit={m}", {}),
    ("date-time in the query", "dpo", "GET", "/v1/audit?since={m}", {}),
    ("wrong type", "writer", "POST", "/v1/subjects", {"json": {"name": ["{m}"]}}),
    ("pattern", "admin", "POST", "/v1/clients", {"json": {"name": "{m} x", "role": "writer"}}),
    ("length", "writer", "POST", "/v1/subjects", {"json": {"name": "{m}" * 40}}),
    ("unknown field", "writer", "POST", "/v1/subjects", {"json": {"name": "x", "{m}": 1}}),
    (
        "unknown nested field",
        "writer",
        "POST",
        "/v1/subjects",
        {"json": {"name": "x", "postal_address": {"{m}": "y"}}},
    ),
    (
        "unknown field in a payload",
        "dpo",
        "POST",
        "/v1/requests",
        {
            "json": {
                "subject_id": "00000000-0000-4000-8000-000000000000",
                "type": "erasure",
                "channel": "letter",
                "payload": {"{m}": 1},
            }
        },
    ),
    ("unknown query parameter", "dpo", "GET", "/v1/requests?{m}=1", {}),
    (
        "unknown field, public endpoint",
        None,
        "POST",
        "/v1/consents/confirm",
        {"json": {"token": "t", "{m}": 1}},
    ),
    ("unknown field, sign-in", None, "POST", "/self/v1/session", {"json": {"{m}": "x"}}),
    ("path parameter", "dpo", "GET", "/v1/requests/{m}", {}),
    (
        "malformed JSON",
        "writer",
        "POST",
        "/v1/subjects",
        {"content": '{"name": "{m}" "email"', "headers": {"content-type": "application/json"}},
    ),
    (
        "unterminated JSON",
        "writer",
        "POST",
        "/v1/subjects",
        {"content": '{"name": "{m}', "headers": {"content-type": "application/json"}},
    ),
    (
        "bad escape in JSON",
        "writer",
        "POST",
        "/v1/subjects",
        {"content": '{"name": "{m}\\q"}', "headers": {"content-type": "application/json"}},
    ),
]


def _with_marker(value: Any, marker: str) -> Any:
    if isinstance(value, str):
        return value.replace("{m}", marker)
    if isinstance(value, list):
        return [_with_marker(v, marker) for v in value]
    if isinstance(value, dict):
        return {_with_marker(k, marker): _with_marker(v, marker) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("kind", "role", "method", "path", "kwargs"), _ECHO_CASES, ids=[c[0] for c in _ECHO_CASES]
)
async def test_validation_errors_never_quote_the_submitted_value(
    vault, log_stream, kind, role, method, path, kwargs
):
    """Whatever kind of field is invalid (enum, type, pattern, length, unknown field or
    query parameter, path parameter, JSON syntax), the problem (422, or 400 for a body that
    is not JSON) names fields and rules
    but the submitted marker appears nowhere in the response or the logs."""
    marker = f"Zq{zlib.crc32(kind.encode()) % 10_000:04d}Mark"
    keys = {
        "admin": ("ops", []),
        "dpo": ("dpo-1", []),
        "writer": ("crm", []),
        "lookup": ("shop", ["order.delivery"]),
    }
    headers = dict(kwargs.get("headers", {}))
    if role:
        name, purposes = keys[role]
        headers.update(bearer(await client_key(vault, name, role, purposes)))
    request = {k: _with_marker(v, marker) for k, v in kwargs.items() if k != "headers"}
    async with api(vault) as http:
        r = await http.request(method, _with_marker(path, marker), headers=headers, **request)
    assert_problem(r, 400 if "JSON" in kind else 422)
    assert marker.lower() not in r.text.lower(), (kind, r.text)
    assert marker.lower() not in json.dumps(dict(r.headers)).lower(), kind
    assert marker.lower() not in log_stream.getvalue().lower(), kind
