"""Rules the server enforces in code that the document states too, checked against the
server's own rule so the two cannot drift apart."""

from __future__ import annotations

import re
import sys

import jsonschema

from api.app import openapi_document


def _schema(name: str) -> dict:
    return openapi_document()["components"]["schemas"][name]


def test_a_batch_refuses_a_followup_in_the_document_as_the_server_does() -> None:
    """The batch body's `not` rejects `contact.followup` and admits a contact without one,
    a null follow-up and a null contact."""
    rule = jsonschema.Draft202012Validator(_schema("BatchLookupRequest")["not"])
    assert rule.is_valid({"contact": {"brand": "tresor", "followup": "0" * 32}})
    assert not rule.is_valid({"contact": {"brand": "tresor"}})
    assert not rule.is_valid({"contact": {"brand": "tresor", "followup": None}})
    assert not rule.is_valid({"contact": None})
    assert not rule.is_valid({})


def test_the_not_blank_pattern_is_pythons_strip() -> None:
    """Evidence text matches the document's pattern exactly when `str.strip` leaves
    something, for every single character (the server's check strips first)."""
    props = _schema("EvidenceIn")["properties"]
    pattern = re.compile(props["notice_version"]["pattern"])
    differs = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if bool(pattern.search(chr(code))) != bool(chr(code).strip())
    ]
    assert differs == []
    assert not pattern.search("\u001f \u0085")
    assert pattern.search(" v1 ")


def test_a_basis_reference_is_not_blank_in_the_document_as_on_the_server() -> None:
    """Every purpose rule that asks for a reference (contract, legal obligation, ...) states
    the same not-blank pattern, so a reference of only U+001F is invalid in the document
    too (the server strips it to nothing and answers 422)."""
    evidence = _schema("EvidenceIn")["properties"]["notice_version"]["pattern"]
    rules = [r["then"] for r in _schema("ConsentCreate")["allOf"] if "then" in r]
    references = [r["properties"]["reference"] for r in rules if "reference" in r["properties"]]
    assert references
    assert all(ref["pattern"] == evidence for ref in references)
    assert not re.search(references[0]["pattern"], "\u001f")
