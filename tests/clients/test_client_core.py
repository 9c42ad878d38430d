"""When the client retries and what it raises, on scripted answers (httpx.MockTransport)."""

from __future__ import annotations

import inspect

import httpx
import pytest
from tresor_client import (
    AsyncTresor,
    Conflict,
    ContactPatch,
    DeprecatedOperation,
    LookupRequest,
    RateLimited,
    SubjectCreate,
    Tresor,
    Unavailable,
)
from tresor_client._core import Retry

SID = "00000000-0000-4000-8000-000000000000"
CREATED = {"subject_id": SID}


def _problem(status: int, reason: str | None = None) -> dict[str, object]:
    return {
        "type": "urn:tresor:problem:x",
        "title": "t",
        "status": status,
        "detail": "d",
        "reason": reason,
    }


def _scripted(*answers: httpx.Response) -> tuple[Tresor, list[httpx.Request], list[float]]:
    """A client whose n-th request gets the n-th answer; records requests and pauses."""
    requests: list[httpx.Request] = []
    pauses: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answers[len(requests) - 1]

    http = httpx.Client(base_url="http://tresor.test", transport=httpx.MockTransport(handler))
    client = Tresor("http://tresor.test", "key", http=http, retry=Retry(), sleep=pauses.append)
    return client, requests, pauses


def test_a_503_is_retried_with_the_same_key():
    """An unavailable server is asked again; the retry carries the first try's key."""
    client, requests, pauses = _scripted(
        httpx.Response(503, json=_problem(503)), httpx.Response(201, json=CREATED)
    )
    assert client.create_subject(SubjectCreate(name="A")).body.subject_id == SID
    assert len(requests) == 2 and len(pauses) == 1
    assert requests[0].headers["Idempotency-Key"] == requests[1].headers["Idempotency-Key"]


def test_a_409_on_the_first_try_is_the_callers():
    """A conflict that no lost try explains is raised at once, not retried."""
    client, requests, _ = _scripted(httpx.Response(409, json=_problem(409)))
    with pytest.raises(Conflict):
        client.create_subject(SubjectCreate(name="A"))
    assert len(requests) == 1


def test_retry_after_is_honoured_and_a_long_one_raised():
    """429 with Retry-After 2 waits 2 s; Retry-After above the cap raises RateLimited."""
    client, _, pauses = _scripted(
        httpx.Response(429, json=_problem(429), headers={"Retry-After": "2"}),
        httpx.Response(201, json=CREATED),
    )
    client.create_subject(SubjectCreate(name="A"))
    assert pauses == [2.0]
    client, requests, _ = _scripted(
        httpx.Response(429, json=_problem(429, "quota"), headers={"Retry-After": "3600"})
    )
    with pytest.raises(RateLimited) as limited:
        client.create_subject(SubjectCreate(name="A"))
    assert (limited.value.retry_after, limited.value.reason, len(requests)) == (3600.0, "quota", 1)


def test_a_conditional_update_is_not_retried_on_503():
    """A PATCH is sent once; the 503 is raised."""
    client, requests, _ = _scripted(httpx.Response(503, json=_problem(503)))
    with pytest.raises(Unavailable):
        client.rectify_contact(SID, ContactPatch(name="B"), if_match='"contact-r1"')
    assert len(requests) == 1 and requests[0].headers["If-Match"] == '"contact-r1"'


def test_an_answer_that_is_no_problem_still_raises_by_status():
    """A proxy's HTML 502 becomes Unavailable with status 502 after the retries."""
    client, requests, _ = _scripted(*[httpx.Response(502, text="<html>bad gateway</html>")] * 4)
    with pytest.raises(Unavailable) as unavailable:
        client.create_subject(SubjectCreate(name="A"))
    assert unavailable.value.status == 502 and len(requests) == Retry().attempts


def test_unset_fields_are_left_out_and_none_is_sent_as_null():
    """ContactPatch sends only what was set; `None` removes a field (JSON null)."""
    client, requests, _ = _scripted(
        httpx.Response(200, json={"subject_id": SID, "changed": ["name", "email"]})
    )
    client.rectify_contact(SID, ContactPatch(name="B", email=None), if_match='"contact-r1"')
    assert requests[0].content == b'{"email":null,"name":"B"}'


@pytest.mark.parametrize("bad", ["", "..", "a/b", "a?b", "a#b", "%2e"])
def test_a_path_parameter_cannot_change_the_path(bad: str):
    """Identifiers with path syntax are refused before anything is sent."""
    client, requests, _ = _scripted()
    with pytest.raises(ValueError, match="path parameter"):
        client.list_consents(bad)
    assert requests == []


def test_a_deprecated_operation_warns_with_its_sunset():
    """`Deprecation` on an answer is a DeprecatedOperation warning naming the sunset."""
    headers = {"Deprecation": "@1798761600", "Sunset": "Sat, 01 Jan 2028 00:00:00 GMT"}
    client, _, _ = _scripted(httpx.Response(201, json=CREATED, headers=headers))
    with pytest.warns(DeprecatedOperation, match="createSubject.*Sunset: Sat, 01 Jan 2028"):
        client.create_subject(SubjectCreate(name="A"))


def test_both_clients_offer_the_same_operations():
    """AsyncTresor has each public method of Tresor, with the same parameters."""

    def methods(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in ("close", "aclose")
        }

    assert methods(Tresor) == methods(AsyncTresor)
    assert set(methods(Tresor)) >= {"create_subject", "lookup", "lookup_batch", "withdraw_consent"}


def test_a_lookup_without_idempotency_sends_no_key_and_is_not_retried():
    """`idempotent=False`: no Idempotency-Key (nothing kept on the server), one try only."""
    client, requests, _ = _scripted(httpx.Response(503, json=_problem(503)))
    with pytest.raises(Unavailable):
        client.lookup(LookupRequest(purpose="offers.sms", subject_id=SID), idempotent=False)
    assert len(requests) == 1 and "Idempotency-Key" not in requests[0].headers
