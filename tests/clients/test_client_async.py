"""`AsyncTresor` against a served Tresor: the same operations as the sync client, the batch
as an async iterator, a lost answer retried once with the same key, refusals as exceptions."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from tresor_client import (
    AsyncTresor,
    BatchLookupRequest,
    ConsentCreate,
    ContactIn,
    ContactPatch,
    Denied,
    LookupRequest,
    PreconditionFailed,
    SubjectCreate,
)
from tresor_client._core import Retry

from tests.clients.conftest import Server
from tests.clients.test_client_sync import SMS_EVIDENCE, phone


class LoseFirstAnswer(httpx.AsyncBaseTransport):
    """Sends every request on; drops the first answer with a read timeout."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = await self.inner.handle_async_request(request)
        if len(self.sent) == 1:
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("simulated: the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


#: offers.sms is a commercial purpose: a lookup announces its contact.
SMS = ContactIn(brand="tresor", channel="sms", type="commercial")


async def test_the_five_things_with_the_async_client(server: Server):
    """Create + consent, lookup, batch (async for), rectify with If-Match, withdraw."""
    number = phone()
    async with (
        AsyncTresor(server.base, server.writer) as crm,
        AsyncTresor(server.base, server.shop) as shop,
    ):
        created = await crm.create_subject(SubjectCreate(phone=number, name="Max Muster"))
        subject_id = created.body.subject_id
        consent = await crm.record_consent(
            subject_id, ConsentCreate(purpose="offers.sms", evidence=SMS_EVIDENCE)
        )
        assert consent.body.status == "granted"
        await crm.record_consent(
            subject_id, ConsentCreate(purpose="order.delivery", reference="order 1")
        )

        found = await shop.lookup(LookupRequest(purpose="offers.sms", phone=number, contact=SMS))
        assert found.body.subject_id == subject_id and found.etag == created.etag

        request = BatchLookupRequest(
            purpose="order.delivery", subject_ids=[subject_id], fields=["name"]
        )
        lines = [line async for line in shop.lookup_batch(request)]
        assert [(x.subject_id, x.fields) for x in lines] == [(subject_id, {"name": "Max Muster"})]

        assert found.etag
        patched = await crm.rectify_contact(
            subject_id, ContactPatch(name="Max M."), if_match=found.etag
        )
        with pytest.raises(PreconditionFailed):
            await crm.rectify_contact(subject_id, ContactPatch(name="Max X."), if_match=found.etag)
        assert patched.etag != found.etag

        await crm.withdraw_consent(subject_id, consent.body.consent_id)
        with pytest.raises(Denied) as denied:
            await shop.lookup(
                LookupRequest(purpose="offers.sms", subject_id=subject_id, contact=SMS)
            )
        assert denied.value.reason == "consent_withdrawn"


async def test_a_lost_answer_is_retried_with_the_same_key_and_done_once(server: Server):
    """The retried consent is the replayed first one: one consent, one key on both tries."""
    lossy = LoseFirstAnswer()

    async def no_pause(_: float) -> None:
        return None

    async with (
        AsyncTresor(server.base, server.writer) as crm,
        httpx.AsyncClient(base_url=server.base, transport=lossy) as http,
    ):
        subject_id = (await crm.create_subject(SubjectCreate(phone=phone()))).body.subject_id
        client = AsyncTresor(server.base, server.writer, http=http, retry=Retry(), sleep=no_pause)
        consent = await client.record_consent(
            subject_id, ConsentCreate(purpose="offers.sms", evidence=SMS_EVIDENCE)
        )
        listed = (await crm.list_consents(subject_id)).body.items
    assert consent.replayed
    assert len({r.headers["Idempotency-Key"] for r in lossy.sent}) == 1 and len(lossy.sent) == 2
    assert [c.consent_id for c in listed] == [consent.body.consent_id]


async def test_twenty_concurrent_tries_with_one_key_record_one_consent(server: Server):
    """20 tries of one consent at once, one key: one consent, every try gets its answer."""
    async with AsyncTresor(server.base, server.writer) as crm:
        subject_id = (await crm.create_subject(SubjectCreate(phone=phone()))).body.subject_id
        consent = ConsentCreate(purpose="offers.sms", evidence=SMS_EVIDENCE)
        key = f"checkout-{subject_id}"
        results = await asyncio.gather(
            *(crm.record_consent(subject_id, consent, idempotency_key=key) for _ in range(20))
        )
        listed = (await crm.list_consents(subject_id)).body.items
    assert len({r.body.consent_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert [c.consent_id for c in listed] == [results[0].body.consent_id]
