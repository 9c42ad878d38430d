"""`api.body_errors`: every failing part of a body, by JSON Pointer, never by client keys."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from api.body_errors import dotted_to_pointer, failing_fields, pointer, split_message


class _Address(Struct, forbid_unknown_fields=True):
    street: str
    city: str


class _Body(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(max_length=5)]
    tags: list[Annotated[str, Meta(min_length=1)]] = []
    address: _Address | None = None
    extra: dict[str, int] = {}


def _decoder(kind: type, value: object) -> object:
    raise NotImplementedError


def test_pointers_escape_tilde_and_slash():
    """RFC 6901: `~` becomes `~0` and `/` becomes `~1`; dotted paths become pointers."""
    assert pointer("a/b", "c~d", 0) == "/a~1b/c~0d/0"
    assert dotted_to_pointer("evidence.method") == "/evidence/method"
    assert dotted_to_pointer("") == ""


def test_msgspec_locations_become_pointers_and_stop_at_a_dict_key():
    """`$.a[0].b` is `/a/0/b`; a dict's key (client input) ends the pointer."""
    assert split_message("Expected `int` - at `$.a[0].b`") == ("Expected `int`", "/a/0/b")
    assert split_message("Expected `int` - at `$.extra[...]`") == ("Expected `int`", "/extra")
    assert split_message("Expected `object`") == ("Expected `object`", "")


def test_every_failing_part_is_listed():
    """Wrong types, list items, missing and unknown fields are each listed, the unknown
    field at its holder; a valid body has none."""
    body = {"name": "toolong", "tags": ["x", ""], "address": {"street": 1, "erika": 2}}
    found = dict(failing_fields(body, _Body, _decoder))
    assert set(found) == {"/name", "/tags/1", "/address/street", "/address/city", "/address"}
    assert "erika" not in repr(found)
    assert failing_fields({"name": "ok"}, _Body, _decoder) == []


def test_a_dict_value_is_reported_at_the_dict():
    """A bad value under a client-chosen key is reported at the dict, not by the key."""
    found = failing_fields({"name": "ok", "extra": {"erika@example.org": "x"}}, _Body, _decoder)
    assert [where for where, _ in found] == ["/extra"]
    assert msgspec.json.encode(found).find(b"erika") == -1
