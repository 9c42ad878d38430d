"""The client puts no contact data where it does not belong: not in URLs (identifiers go in
bodies), not in log records (httpx's and ours), not in exception messages or reprs, on the
successful paths, on refusals and on a lost answer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from tresor_client import (
    ApiError,
    BatchLookupRequest,
    ConsentCreate,
    ContactIn,
    ContactPatch,
    LookupRequest,
    PostalAddressIn,
    SubjectCreate,
    TransportError,
    Tresor,
)
from tresor_client._core import Retry

from tests.clients.conftest import Server
from tests.clients.test_client_sync import SMS_EVIDENCE
from tests.support.privacy import CANARY, found_canaries


class Recording(httpx.BaseTransport):
    """Passes requests on and keeps their URLs; after `lose_from` requests it drops answers."""

    def __init__(self, lose_from: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.urls: list[str] = []
        self.lose_from = lose_from

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        response = self.inner.handle_request(request)
        if self.lose_from is not None and len(self.urls) > self.lose_from:
            response.read()
            response.close()
            raise httpx.ReadTimeout("simulated", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@contextmanager
def _client(server: Server, key: str, transport: Recording) -> Iterator[Tresor]:
    with httpx.Client(base_url=server.base, transport=transport) as http:
        retry = Retry(attempts=2, backoff=0.01)
        yield Tresor(server.base, key, http=http, retry=retry, sleep=lambda _: None)


def test_no_contact_data_in_urls_logs_or_errors(server: Server, caplog: pytest.LogCaptureFixture):
    """Create, consent, lookup, batch, a refused rectification and a lost answer with the
    canary's data: none of it in a URL, a log record or an error."""
    caplog.set_level(logging.DEBUG)
    writes, reads = Recording(), Recording()
    errors: list[BaseException] = []
    canary = SubjectCreate(
        email=CANARY["email"],
        phone=CANARY["phone"],
        name=CANARY["name"],
        postal_address=PostalAddressIn(**CANARY["postal_address"]),
        external_ref=CANARY["external_ref"],
    )
    with _client(server, server.writer, writes) as crm, _client(server, server.shop, reads) as shop:
        created = crm.create_subject(canary)
        sid = created.body.subject_id
        crm.record_consent(sid, ConsentCreate(purpose="offers.sms", evidence=SMS_EVIDENCE))
        crm.record_consent(sid, ConsentCreate(purpose="order.delivery", reference="order 1"))
        sms = ContactIn(brand="tresor", channel="sms", type="commercial")
        shop.lookup(LookupRequest(purpose="offers.sms", email=CANARY["email"], contact=sms))
        batch = BatchLookupRequest(purpose="order.delivery", emails=[CANARY["email"]])
        list(shop.lookup_batch(batch))
        with pytest.raises(ApiError) as refused:  # an e-mail the server refuses, quoting none
            crm.rectify_contact(sid, ContactPatch(email="zx81q-at-example"), if_match=created)
        errors.append(refused.value)
    lossy = Recording(lose_from=0)
    with _client(server, server.writer, lossy) as crm, pytest.raises(TransportError) as lost:
        crm.create_subject(canary)
    errors.append(lost.value)

    urls = writes.urls + reads.urls + lossy.urls
    assert len(urls) >= 7
    assert found_canaries("\n".join(urls)) == []
    assert found_canaries(caplog.text) == []
    for error in errors:
        text = f"{error} {error!r} {error.__cause__!r} {getattr(error, 'problem', '')!r}"
        assert found_canaries(text) == [], type(error).__name__
