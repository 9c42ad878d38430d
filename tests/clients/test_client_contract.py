"""The client is written on the committed document and fails here when the document changed
under it: digests of what it covers, its version, the operations' methods, paths and
headers, and the models' fields against the schemas' properties."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tresor_client import _digests, contract, models
from tresor_client._core import OPERATIONS, VERSION

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT: dict[str, Any] = json.loads((ROOT / "openapi" / "openapi.json").read_text())
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
REGENERATE = (
    "update the client, then: python -m tresor_client.contract openapi/openapi.json --write"
)


def _changed(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [
        f"{kind} {name}"
        for kind in ("operations", "schemas")
        for name in sorted(set(stored[kind]) | set(current[kind]))
        if stored[kind].get(name) != current[kind].get(name)
    ]


def test_the_stored_digests_are_those_of_the_committed_document():
    """Every operation and schema the client covers is, byte for byte, what it was written on."""
    current = contract.digests(DOCUMENT)
    changed = _changed(_digests.DIGESTS, current)
    assert changed == [], f"the document changed under the client ({changed}); {REGENERATE}"
    assert _digests.DIGESTS == current


def test_a_changed_schema_or_operation_is_noticed():
    """A new property, a changed header or a removed operation each change the digests."""
    stored = contract.digests(DOCUMENT)
    doc = copy.deepcopy(DOCUMENT)
    doc["components"]["schemas"]["LookupRequest"]["properties"]["channel"] = {"type": "string"}
    assert _changed(stored, contract.digests(doc)) == ["schemas LookupRequest"]
    doc = copy.deepcopy(DOCUMENT)
    contract.find_operation(doc, "rectifyContact")[2]["parameters"].pop()
    assert _changed(stored, contract.digests(doc)) == ["operations rectifyContact"]
    doc = copy.deepcopy(DOCUMENT)
    del doc["paths"]["/v1/lookup/batch"]
    with pytest.raises(KeyError):
        contract.digests(doc)


def test_the_client_is_versioned_with_the_api():
    """The client's version is the document's `info.version`, in code and in its metadata."""
    pyproject = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())
    assert VERSION == pyproject["project"]["version"] == DOCUMENT["info"]["version"]
    assert _digests.DIGESTS["version"] == VERSION


def _parameters(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if "name" in p}


def _ref(content: dict[str, Any]) -> str:
    (media,) = content.values()
    return str(media["schema"]["$ref"]).rsplit("/", 1)[-1]


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_each_operation_matches_the_document(operation_id: str):
    """Method, path, bodies, Idempotency-Key (retried) and If-Match (required) as documented."""
    op = OPERATIONS[operation_id]
    method, path, doc_op = contract.find_operation(DOCUMENT, operation_id)
    assert (op.method, op.path) == (method, path)
    assert op.idempotent == ("Idempotency-Key" in _parameters(doc_op))
    assert op.conditional == ("If-Match" in _parameters(doc_op))
    body = doc_op.get("requestBody")
    assert (op.request.__name__ if op.request else None) == (
        _ref(body["content"]) if body else None
    )
    (success,) = [r for status, r in doc_op["responses"].items() if status.startswith("2")]
    assert op.response is not None
    assert op.response.__name__ == _ref(success["content"])


def _reachable(name: str, seen: set[str]) -> set[str]:
    if name in seen:
        return seen
    seen.add(name)
    for ref in _refs(SCHEMAS[name]):
        _reachable(ref, seen)
    return seen


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        # Schemas only: shared parameters and headers (X-Request-ID) are not models.
        found = [ref.rsplit("/", 1)[-1]] if ref.startswith("#/components/schemas/") else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_schema_the_operations_use_is_modelled():
    """The bodies of the covered operations and of their problems, and all they refer to."""
    needed: set[str] = set()
    for op_id in OPERATIONS:
        for ref in _refs(contract.find_operation(DOCUMENT, op_id)[2]):
            _reachable(ref, needed)
    assert needed <= set(contract.covered_schemas()), needed - set(contract.covered_schemas())
    assert set(contract.covered_schemas()) <= set(SCHEMAS)


@pytest.mark.parametrize("name", contract.covered_schemas())
def test_each_model_has_its_schemas_properties(name: str):
    """Same field names; a field has no default exactly when the schema requires it."""
    struct: type[msgspec.Struct] = getattr(models, name)
    schema = SCHEMAS[name]
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    assert {f.name for f in info.fields} == set(schema["properties"])
    assert {f.name for f in info.fields if f.required} == set(schema.get("required", []))
