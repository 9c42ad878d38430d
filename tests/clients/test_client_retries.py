"""Safe retries: a call whose answer was lost is retried with the same Idempotency-Key and
the server does it once; calls whose repetition is not safe are never retried."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from tresor_client import ConsentCreate, ContactPatch, SubjectCreate, TransportError, Tresor
from tresor_client._core import Retry

from tests.clients.conftest import Server
from tests.clients.test_client_sync import SMS_EVIDENCE, phone

FAST = Retry(attempts=3, backoff=0.01, max_backoff=0.02)


class LoseAnswers(httpx.BaseTransport):
    """Sends each request to the server, then, for the first `lose` requests, drops the
    answer and raises a read timeout: what a client sees when the network fails after the
    server has done the work."""

    def __init__(self, lose: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose = lose
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = self.inner.handle_request(request)
        if len(self.sent) <= self.lose:
            response.read()
            response.close()
            raise httpx.ReadTimeout("simulated: the answer was lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@contextmanager
def _client(server: Server, key: str, transport: httpx.BaseTransport) -> Iterator[Tresor]:
    """A client over `transport`, retrying without pauses; the caller's httpx client is
    the caller's to close (as with any `http=` given)."""
    with httpx.Client(base_url=server.base, transport=transport, timeout=10) as http:
        yield Tresor(server.base, key, http=http, retry=FAST, sleep=lambda _: None)


def test_a_timed_out_consent_retried_with_the_same_key_is_recorded_once(server: Server):
    """The first answer is lost, the retry gets it replayed, and there is exactly one consent."""
    with Tresor(server.base, server.writer) as crm:
        subject_id = crm.create_subject(SubjectCreate(phone=phone())).body.subject_id
        lossy = LoseAnswers(lose=1)
        with _client(server, server.writer, lossy) as client:
            consent = client.record_consent(
                subject_id, ConsentCreate(purpose="offers.sms", evidence=SMS_EVIDENCE)
            )
        assert consent.replayed
        keys = {r.headers["Idempotency-Key"] for r in lossy.sent}
        assert len(lossy.sent) == 2 and len(keys) == 1
        listed = crm.list_consents(subject_id).body.items
        assert [c.consent_id for c in listed] == [consent.body.consent_id]


def test_the_callers_own_key_is_sent_and_a_later_call_with_it_is_replayed(server: Server):
    """A key the caller keeps (e.g. its order number) makes a retry after a crash safe too."""
    key = f"order-{phone()}"
    with Tresor(server.base, server.writer) as crm:
        number = phone()
        first = crm.create_subject(SubjectCreate(phone=number), idempotency_key=key)
        again = crm.create_subject(SubjectCreate(phone=number), idempotency_key=key)
    assert not first.replayed and again.replayed
    assert again.body.subject_id == first.body.subject_id


def test_giving_up_raises_a_transport_error_after_the_allowed_tries(server: Server):
    """Every answer lost: `attempts` tries, then TransportError, with no contact data in it."""
    lossy = LoseAnswers(lose=10)
    number = phone()
    with _client(server, server.writer, lossy) as client, pytest.raises(TransportError) as gave_up:
        client.create_subject(SubjectCreate(phone=number))
    assert len(lossy.sent) == FAST.attempts
    assert number not in str(gave_up.value)


def test_a_conditional_update_is_not_retried(server: Server):
    """A PATCH whose answer was lost is not sent again: the caller must read and decide."""
    with Tresor(server.base, server.writer) as crm:
        created = crm.create_subject(SubjectCreate(phone=phone(), name="Erika"))
    assert created.etag
    lossy = LoseAnswers(lose=1)
    with _client(server, server.writer, lossy) as client, pytest.raises(TransportError):
        client.rectify_contact(
            created.body.subject_id, ContactPatch(name="Erika M."), if_match=created.etag
        )
    assert len(lossy.sent) == 1
