"""The document's links (`api.openapi_links`) name real operations, parameters and answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from litestar.openapi.spec import Info, OpenAPI, OpenAPIResponse, Operation, PathItem

from api import openapi_links
from api.openapi_links import LINKS, document_links

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch")
#: `$response.body#/x`, `$request.body#/x`, `$request.path.x`, `$response.header.X`.
EXPRESSION = re.compile(r"^\$(response|request)\.(body#/(?P<pointer>\w+)|(path|header)\.[\w-]+)$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(COMMITTED.read_text(encoding="utf-8"))


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        op["operationId"]: op
        for item in document["paths"].values()
        for method, op in item.items()
        if method in METHODS
    }


def _parameters(operation: dict[str, Any], document: dict[str, Any]) -> set[str]:
    found = set()
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].split("/")[-1]]
        found.add(f"{parameter['in']}.{parameter['name']}")
    return found


def _links(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (source, status, link)
        for source, op in _operations(document).items()
        for status, response in op["responses"].items()
        for link in response.get("links", {}).values()
    ]


def test_every_declared_link_is_in_the_committed_document(document):
    """Each link of `LINKS` sits on its source operation's answer in the committed document."""
    operations = _operations(document)
    for link in LINKS:
        links = operations[link.source]["responses"][link.status].get("links", {})
        assert links[link.name]["operationId"] == link.target


def test_links_pass_only_parameters_their_target_takes(document):
    """A link fills only parameters the target operation declares, from well-formed runtime
    expressions, so no client (or generator) is sent looking for a parameter that is not there."""
    operations = _operations(document)
    for _, _, link in _links(document):
        target = operations[link["operationId"]]
        for name, expression in link.get("parameters", {}).items():
            assert name in _parameters(target, document), (link, name)
            assert EXPRESSION.match(expression), expression


def test_a_lookup_link_names_exactly_one_identifier(document):
    """Every link into the lookup sends the subject's id and nulls for the other identifiers,
    so a body completed around it still names exactly one (the lookup's `oneOf`)."""
    lookups = [link for _, _, link in _links(document) if link["operationId"] == "lookup"]
    assert lookups
    for link in lookups:
        body = link["requestBody"]
        assert body["subject_id"].startswith("$")
        assert {body[k] for k in ("email", "phone", "external_ref")} == {None}


def _one_operation_document(operation_id: str) -> OpenAPI:
    operation = Operation(operation_id=operation_id, responses={"201": OpenAPIResponse("ok")})
    return OpenAPI(
        info=Info(title="t", version="1"), servers=[], paths={"/x": PathItem(post=operation)}
    )


def test_a_link_to_an_unknown_operation_stops_the_app(monkeypatch):
    """A link naming an operation the document lacks raises instead of publishing a dangling
    reference."""
    link = openapi_links._Link("createSubject", "201", "Broken", "noSuchOperation", "-")
    monkeypatch.setattr(openapi_links, "LINKS", (link,))
    with pytest.raises(LookupError, match="noSuchOperation"):
        document_links(_one_operation_document("createSubject"))


def test_a_link_from_an_undocumented_answer_stops_the_app(monkeypatch):
    """A link from a status the source operation does not document raises."""
    link = openapi_links._Link("createSubject", "200", "Broken", "createSubject", "-")
    monkeypatch.setattr(openapi_links, "LINKS", (link,))
    with pytest.raises(LookupError, match="no 200 answer"):
        document_links(_one_operation_document("createSubject"))
