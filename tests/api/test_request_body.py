"""JSON request bodies: nesting depth is limited before anything decodes them."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from api.request_body import MAX_JSON_DEPTH, json_depth
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem, row_counts

DEEP = 32_000


def _nested(depth: int) -> bytes:
    return b'{"email": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


async def test_a_deeply_nested_body_on_a_public_path_is_a_400(vault, log_stream):
    """A body nested 32,000 levels deep on the unauthenticated sign-in endpoint is a 400
    problem+json, not a RecursionError and a 500, and the log holds no error."""
    async with api(vault) as http:
        r = await http.post(
            "/self/v1/session",
            content=b"[" * DEEP + b"]" * DEEP,
            headers={"content-type": "application/json"},
        )
    body = assert_problem(r, 400)
    assert "nest" in body["detail"] or any("nest" in e["message"] for e in body["errors"])
    logged = log_stream.getvalue()
    assert "unhandled_error" not in logged and "RecursionError" not in logged
    assert "Traceback" not in logged


async def test_a_deeply_nested_body_on_an_authenticated_path_is_a_400(vault):
    """The same holds after authentication: a writer's deeply nested subject body is a 400
    problem+json and stores nothing."""
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        before = await row_counts(vault)
        r = await http.post(
            "/v1/subjects",
            content=_nested(DEEP),
            headers={**bearer(writer), "content-type": "application/json"},
        )
        assert_problem(r, 400)
        assert await row_counts(vault) == before


async def test_nesting_at_the_limit_reaches_ordinary_validation(vault):
    """A body exactly at the depth limit is decoded and judged on its content (the field
    has the wrong type: 422), one level more is refused for its depth (400, like JSON that
    cannot be read)."""
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        at_limit = await http.post(
            "/v1/subjects",
            content=_nested(MAX_JSON_DEPTH),
            headers={**bearer(writer), "content-type": "application/json"},
        )
        over = await http.post(
            "/v1/subjects",
            content=_nested(MAX_JSON_DEPTH + 1),
            headers={**bearer(writer), "content-type": "application/json"},
        )
    fields = [e["field"] for e in assert_problem(at_limit, 422)["errors"]]
    assert fields == ["/email"], at_limit.text
    assert "deeper" in assert_problem(over, 400)["errors"][0]["message"], over.text


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ax,:'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\b'), inner, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(_JSON)
def test_json_depth_counts_containers_not_brackets_inside_strings(value):
    """The depth counted on the raw bytes equals the nesting of the decoded value, whatever
    brackets and escaped quotes the strings hold."""
    raw = json.dumps(value).encode()
    assert json_depth(raw, limit=10_000) == _depth(value)


def test_json_depth_stops_counting_past_the_limit():
    """Past the limit the count stops early: the answer is only "more than the limit"."""
    assert json_depth(b"[" * 100_000, limit=64) == 65
