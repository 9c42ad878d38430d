"""One error shape: the framework's own refusals (unknown path, wrong method, wrong media
type, missing credentials, oversized body) are `urn:tresor:problem:*` like the domain's."""

from __future__ import annotations

import pytest
from litestar.exceptions import HTTPException

from api import errors
from tests.support.factories import api, bearer, client_key, person
from tests.support.privacy import assert_problem


async def test_framework_refusals_have_tresor_problem_types(vault):
    """404, 405, 415, 401 and 413 from Litestar itself carry a `urn:tresor:problem:` type
    named after the refusal, never `about:blank`."""
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        cases = [
            (await http.get("/v1/no-such-thing", headers=bearer(writer)), 404, "not-found"),
            (await http.delete("/v1/subjects", headers=bearer(writer)), 405, "method-not-allowed"),
            (
                await http.post(
                    "/v1/subjects",
                    content=b"<subject/>",
                    headers={**bearer(writer), "content-type": "application/xml"},
                ),
                None,
                None,
            ),
            (await http.post("/v1/subjects", json=person(1)), 401, "unauthenticated"),
            (
                await http.post(
                    "/v1/subjects",
                    content=b"{" + b" " * 70_000 + b"}",
                    headers={**bearer(writer), "content-type": "application/json"},
                ),
                413,
                "too-large",
            ),
        ]
    for response, status, kind in cases:
        body = assert_problem(response, status)
        assert body["type"].startswith("urn:tresor:problem:"), body
        if kind:
            assert body["type"] == f"urn:tresor:problem:{kind}", body


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 406, 413, 415, 418, 429, 503])
def test_every_framework_status_maps_to_a_tresor_type(status):
    """Each status an `HTTPException` may carry has a type in the Tresor family; a status
    the table does not name still gets one (`http-<status>`)."""
    assert errors.http_type(status).startswith("urn:tresor:problem:")
    row = errors.page_row(HTTPException(status_code=status))
    assert row.type.startswith("urn:tresor:problem:")
