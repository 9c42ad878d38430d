"""Validation failures: one 422 listing every failing field by its JSON Pointer."""

from __future__ import annotations

from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem, row_counts


async def test_every_failing_body_field_is_listed_by_its_json_pointer(vault):
    """A body with several mistakes (wrong types, a nested object missing fields, unknown
    fields) is one 422 naming each by its JSON Pointer, not only the first; nothing stored."""
    writer = await client_key(vault, "crm", "writer")
    body = {
        "name": ["Erika"],
        "phone": 4940555123,
        "postal_address": {"street": 7, "shoe_size": 44},
        "hat_size": 58,
    }
    async with api(vault) as http:
        before = await row_counts(vault)
        r = await http.post("/v1/subjects", json=body, headers=bearer(writer))
        assert await row_counts(vault) == before
    problem = assert_problem(r, 422)
    assert problem["type"] == "urn:tresor:problem:validation"
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {
        "/name",
        "/phone",
        "/postal_address/street",
        "/postal_address/postal_code",
        "/postal_address/city",
        "/postal_address/country",
        "/postal_address",  # holds an unknown field, which is not named (it is client input)
        "",  # the body itself holds an unknown field
    }, r.text
    assert "shoe_size" not in r.text and "hat_size" not in r.text and "Erika" not in r.text


async def test_list_items_are_named_by_their_index(vault):
    """A bad value inside a list is named by its index (`/fields/1`), the list's other
    mistakes too."""
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    body = {
        "purpose": "order.delivery",
        "subject_id": "00000000-0000-4000-8000-000000000000",
        "fields": ["email", "hair_colour", "eye_colour"],
    }
    async with api(vault) as http:
        r = await http.post("/v1/lookup", json=body, headers=bearer(shop))
    fields = [e["field"] for e in assert_problem(r, 422)["errors"]]
    assert fields == ["/fields/1", "/fields/2"], r.text


async def test_every_failing_query_parameter_is_listed(vault):
    """Several bad query parameters are one 422 naming each parameter."""
    dpo = await client_key(vault, "dpo-1", "dpo")
    async with api(vault) as http:
        r = await http.get("/v1/audit?limit=0&decision=maybe", headers=bearer(dpo))
    fields = {e["field"] for e in assert_problem(r, 422)["errors"]}
    assert fields == {"limit", "decision"}, r.text


async def test_an_unknown_query_parameter_and_a_bad_body_are_listed_together(vault):
    """An unknown query parameter does not hide the body's mistakes: one 422 names the
    parameter's place and every failing body field; nothing is stored."""
    dpo = await client_key(vault, "dpo-2", "dpo")
    body = {"subject_id": "not-a-subject", "type": "gossip", "channel": 7}
    async with api(vault) as http:
        before = await row_counts(vault)
        r = await http.post("/v1/requests?zzz=1", json=body, headers=bearer(dpo))
        assert await row_counts(vault) == before
    fields = {e["field"] for e in assert_problem(r, 422)["errors"]}
    assert "query" in fields and {"/type", "/channel"} <= fields, r.text
    assert "zzz" not in r.text


async def test_an_unknown_query_parameter_with_a_valid_body_names_only_the_parameter(vault):
    """With a body that is fine, the 422 for an unknown query parameter names only it."""
    dpo = await client_key(vault, "dpo-3", "dpo")
    async with api(vault) as http:
        r = await http.get("/v1/requests?zzz=1", headers=bearer(dpo))
    assert {e["field"] for e in assert_problem(r, 422)["errors"]} == {"query"}, r.text


async def test_malformed_json_is_a_400_with_a_plain_message(vault):
    """A body that is not JSON is a 400 saying so in plain words, not a validation 422."""
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        r = await http.post(
            "/v1/subjects",
            content=b'{"name": "Erika" "email"',
            headers={**bearer(writer), "content-type": "application/json"},
        )
    problem = assert_problem(r, 400)
    assert problem["type"] == "urn:tresor:problem:malformed-json"
    assert problem["detail"] == "The request body is not valid JSON; nothing was changed."
    assert "Erika" not in r.text


async def test_a_domain_rule_names_its_body_field_by_json_pointer(vault):
    """A rule the vault checks (a rectification needs its changes) names the body field by
    the same JSON Pointer a schema error would use."""
    dpo = await client_key(vault, "dpo-1", "dpo")
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        r = await http.post("/v1/subjects", json={"name": "n"}, headers=bearer(writer))
        sid = r.json()["subject_id"]
        r = await http.post(
            "/v1/requests",
            json={"subject_id": sid, "type": "rectification", "channel": "letter"},
            headers=bearer(dpo),
        )
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["/payload/changes"]
