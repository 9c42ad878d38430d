"""The API documents say how a request is correlated: `X-Request-ID` on every operation and
every answer, as the server behaves (`api.logging`)."""

from __future__ import annotations

from api.app import openapi_document
from tests.support.factories import api


def test_every_operation_documents_x_request_id():
    """Each operation takes the optional header and each of its answers names it."""
    document = openapi_document()
    assert document["components"]["parameters"]["X-Request-ID"]["in"] == "header"
    methods = {"get", "put", "post", "delete", "patch"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in methods:
                continue
            refs = [p.get("$ref") for p in operation.get("parameters", [])]
            assert "#/components/parameters/X-Request-ID" in refs, (method, path)
            for status, answer in operation["responses"].items():
                assert "X-Request-ID" in answer.get("headers", {}), (method, path, status)


async def test_the_server_keeps_a_well_formed_request_id_and_replaces_others(vault):
    """A caller's id matching the documented pattern comes back; one that does not is
    replaced by a fresh id, in the header as in a problem's `instance`."""
    async with api(vault) as http:
        kept = await http.get("/health", headers={"X-Request-ID": "order-4711.a"})
        assert kept.headers["x-request-id"] == "order-4711.a"
        replaced = await http.get("/v1/nothing", headers={"X-Request-ID": "mail@example.org"})
        rid = replaced.headers["x-request-id"]
        assert rid != "mail@example.org" and replaced.json()["instance"] == rid
