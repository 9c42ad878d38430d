"""The committed OpenAPI document matches the app, and documents every operation properly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.app import openapi_document

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return json.loads(COMMITTED.read_text(encoding="utf-8"))


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in sorted(doc["paths"].items())
        for method, op in sorted(item.items())
        if method in METHODS
    ]


def _is_public(doc: dict[str, Any], op: dict[str, Any]) -> bool:
    """Public = the operation overrides the document's security with "no credentials"."""
    security = op.get("security", doc.get("security"))
    return not security or {} in security


def test_committed_document_matches_the_app(committed):
    """openapi/openapi.json is exactly what the app generates (no drift)."""
    generated = openapi_document()
    assert generated == committed, (
        "openapi/openapi.json is out of date with the API: run `make openapi` "
        "(or `.venv/bin/tresor openapi > openapi/openapi.json`) and commit the result"
    )


def test_every_operation_has_an_operation_id(committed):
    """Each operation carries a unique operationId (clients are generated from them)."""
    ids = [op.get("operationId") for _, _, op in _operations(committed)]
    missing = [f"{m} {p}" for m, p, op in _operations(committed) if not op.get("operationId")]
    assert not missing, f"operations without operationId: {missing}"
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_protected_operations_declare_problem_responses(committed):
    """Every non-public operation documents 401, 403 and 503 as problem+json, and every
    error response any operation documents is problem+json (readiness aside, which answers
    its Health body)."""
    offenders = []
    for method, path, op in _operations(committed):
        responses = op["responses"]
        if not _is_public(committed, op):
            for code in ("401", "403", "503"):
                if code not in responses:
                    offenders.append(f"{method} {path}: {code} not documented")
        for code, response in responses.items():
            if int(code) < 400 or path == "/ready":
                continue
            content = response.get("content", {})
            if list(content) != [PROBLEM]:
                offenders.append(f"{method} {path}: {code} is not {PROBLEM}")
            elif content[PROBLEM]["schema"] != {"$ref": "#/components/schemas/Problem"}:
                offenders.append(f"{method} {path}: {code} does not use the Problem schema")
    assert not offenders, "\n".join(offenders)


def test_public_operations_are_the_intended_ones(committed):
    """Health, readiness and the double opt-in confirmation are declared public, and no other
    operation of the internal API (/v1) is: everything else there needs an API key."""
    public = {f"{m} {p}" for m, p, op in _operations(committed) if _is_public(committed, op)}
    assert {"GET /health", "GET /ready", "POST /v1/consents/confirm"} <= public
    internal = {label for label in public if label.split(" ", 1)[1].startswith("/v1/")}
    assert internal == {"POST /v1/consents/confirm"}
    for method, path, op in _operations(committed):
        if path.startswith("/v1/") and f"{method} {path}" not in public:
            assert op.get("security", committed["security"]) == [{"ApiKey": []}], (method, path)


def test_validation_failures_are_422_and_only_unreadable_bodies_400(committed):
    """Every operation with a body or a parameter documents 422 (validation failures); 400
    (a body that is not JSON) is documented exactly by the operations that take a body."""
    offenders = []
    for method, path, op in _operations(committed):
        responses = op["responses"]
        params = [p for p in op.get("parameters", []) if "$ref" not in p]
        if ("requestBody" in op or params) and "422" not in responses:
            offenders.append(f"{method} {path}: 422 not documented")
        if ("requestBody" in op) != ("400" in responses):
            offenders.append(f"{method} {path}: 400 documented without a body or missing")
    assert not offenders, "\n".join(offenders)


def test_operations_with_a_body_document_413(committed):
    """Every operation that takes a request body documents the 413 answer of the app-wide
    64 KiB body limit."""
    missing = [
        f"{m} {p}"
        for m, p, op in _operations(committed)
        if "requestBody" in op and "413" not in op["responses"]
    ]
    assert not missing, f"413 not documented for: {missing}"


def _undescribed_properties(schema: Any, where: str) -> list[str]:
    """Properties (at any depth) without a description. The branches of `oneOf`/`anyOf`
    that only restrict properties (`exactly_one`: "this one is not null") define none."""
    if not isinstance(schema, dict):
        return []
    missing = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or not prop.get("description"):
            missing.append(f"{where}.{name}")
        missing += _undescribed_properties(prop, f"{where}.{name}")
    for key in ("items", "additionalProperties"):
        missing += _undescribed_properties(schema.get(key), where)
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        if isinstance(branch, dict) and "type" in branch:
            missing += _undescribed_properties(branch, where)
    return missing


def test_every_operation_and_property_has_a_description(committed):
    """Each operation and each property of every schema (nested ones too) has a
    description, so a reader of the document or a generated client learns what it means."""
    operations = [f"{m} {p}" for m, p, op in _operations(committed) if not op.get("description")]
    assert not operations, f"operations without a description: {operations}"
    properties = [
        missing
        for name, schema in committed["components"]["schemas"].items()
        for missing in _undescribed_properties(schema, name)
    ]
    assert not properties, f"properties without a description: {properties}"
