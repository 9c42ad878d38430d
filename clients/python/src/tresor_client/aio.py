"""`AsyncTresor`: the asynchronous client (httpx), the same as `Tresor` (sync.py) with `await`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

import httpx

from tresor_client import _core as core
from tresor_client import models as m
from tresor_client._core import OPERATIONS, Call, Result, Retry
from tresor_client.errors import TransportError

__all__ = ["AsyncTresor"]


class AsyncTresor:
    """A client of one Tresor server under one API key.

    `retry` says how often a call that may be retried is tried (see `Retry`); `http` lets a
    caller bring its own `httpx.AsyncClient` (proxies, certificates, a transport for tests), in
    which case its base URL is used and closing it stays the caller's job."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: Retry | None = None,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._own = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._auth = {"Authorization": f"Bearer {api_key}", "User-Agent": core.USER_AGENT}
        self.retry = retry or Retry()
        self._sleep = sleep

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncTresor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the operations -------------------------------------------------------------------

    async def create_subject(
        self, subject: m.SubjectCreate, *, idempotency_key: str | None = None
    ) -> Result[m.SubjectCreated]:
        """Store a new data subject; the answer's `etag` is its contact data's state."""
        call = core.prepare(OPERATIONS["createSubject"], subject, idempotency_key=idempotency_key)
        return await self._send(call)

    async def record_consent(
        self, subject_id: str, consent: m.ConsentCreate, *, idempotency_key: str | None = None
    ) -> Result[m.ConsentCreated]:
        """Record a consent with evidence, or another lawful basis with a reference."""
        op = OPERATIONS["recordConsent"]
        call = core.prepare(op, consent, idempotency_key=idempotency_key, subject_id=subject_id)
        return await self._send(call)

    async def list_consents(self, subject_id: str) -> Result[m.ConsentList]:
        """Every basis of a subject with its history."""
        return await self._send(core.prepare(OPERATIONS["listConsents"], subject_id=subject_id))

    async def withdraw_consent(
        self, subject_id: str, consent_id: str, *, idempotency_key: str | None = None
    ) -> Result[m.ConsentOut]:
        """Withdraw a consent (or end another basis) at once."""
        call = core.prepare(
            OPERATIONS["withdrawConsent"],
            idempotency_key=idempotency_key,
            subject_id=subject_id,
            consent_id=consent_id,
        )
        return await self._send(call)

    async def lookup(
        self,
        request: m.LookupRequest,
        *,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> Result[m.LookupResponse]:
        """Resolve one subject's contact data for a purpose; `etag` is the contact's state
        (for `rectify_contact`).

        With `idempotent` (the default) a lost answer is retried under one key: the server
        decides the retry anew (a consent withdrawn in between is honoured) and reserves
        its contact once. It keeps no copy of a lookup's answer. `idempotent=False` sends
        no key and retries nothing."""
        call = core.prepare(
            OPERATIONS["lookup"], request, idempotency_key=idempotency_key, keyed=idempotent
        )
        return await self._send(call)

    async def lookup_batch(
        self,
        request: m.BatchLookupRequest,
        *,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> AsyncIterator[m.BatchLine]:
        """The NDJSON batch, one `BatchLine` as each line arrives (the request is sent on the
        first `anext()`; leaving the loop early closes the connection).

        With `idempotent` (the default) the batch carries an idempotency key and a broken
        connection is retried, skipping the lines already yielded: the server runs the
        retry again (each line decided anew, each contact reserved once per subject and
        key). The server streams each line as it resolves it, with or without a key;
        without one nothing is retried."""
        call = core.prepare(
            OPERATIONS["lookupBatch"], request, idempotency_key=idempotency_key, keyed=idempotent
        )
        call.headers["Accept"] = "application/x-ndjson, application/problem+json"
        yielded = 0
        while True:
            call.attempt += 1
            try:
                async with self._http.stream(
                    "POST", call.url, content=call.content, headers={**self._auth, **call.headers}
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        await self._refused(call, response)
                        continue
                    core.warn_if_deprecated(call.operation, response.headers)
                    seen = 0
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        seen += 1
                        if seen > yielded:
                            yielded += 1
                            yield core.batch_line(line)
                    return
            except httpx.TransportError as exc:
                await self._unanswered(call, exc)

    async def rectify_contact(
        self, subject_id: str, patch: m.ContactPatch, *, if_match: str | Result[Any]
    ) -> Result[m.ContactPatched]:
        """Change contact fields (`None` removes one) if the contact is still in the state
        `if_match` names: an ETag, or the `Result` of a lookup, the creation or the last
        rectification (its `etag` is used); `PreconditionFailed` when someone changed it."""
        op = OPERATIONS["rectifyContact"]
        call = core.prepare(op, patch, if_match=if_match, subject_id=subject_id)
        return await self._send(call)

    async def get_preferences(self, subject_id: str) -> Result[m.PreferencesOut]:
        """The customer's contact preferences; `etag` goes into `set_preferences`."""
        return await self._send(core.prepare(OPERATIONS["getPreferences"], subject_id=subject_id))

    async def set_preferences(
        self, subject_id: str, update: m.PreferencesUpdate, *, if_match: str | Result[Any]
    ) -> Result[m.PreferencesOut]:
        """Replace the preferences if they are still in the state `if_match` names (an ETag,
        or the `Result` of `get_preferences` or the last `set_preferences`)."""
        op = OPERATIONS["setPreferences"]
        call = core.prepare(op, update, if_match=if_match, subject_id=subject_id)
        return await self._send(call)

    # --- the I/O ----------------------------------------------------------------------------

    async def _send(self, call: Call) -> Result[Any]:
        while True:
            call.attempt += 1
            try:
                response = await self._http.request(
                    call.operation.method,
                    call.url,
                    content=call.content,
                    headers={**self._auth, **call.headers},
                )
            except httpx.TransportError as exc:
                await self._unanswered(call, exc)
                continue
            if response.status_code >= 400:
                await self._refused(call, response)
                continue
            return core.result(call.operation, response.headers, response.content)

    async def _refused(self, call: Call, response: httpx.Response) -> None:
        """Wait before the next try, or raise the refusal."""
        pause = core.pause_after_status(call, self.retry, response.status_code, response.headers)
        if pause is None:
            raise core.refusal(response.status_code, response.headers, response.content)
        await self._sleep(pause)

    async def _unanswered(self, call: Call, exc: httpx.TransportError) -> None:
        """Wait before the next try, or give up with a `TransportError`."""
        pause = core.pause_after_transport_error(call, self.retry)
        if pause is None:
            raise TransportError(
                f"{call.operation.operation_id}: no answer after {call.attempt} tries "
                f"({type(exc).__name__})"
            ) from exc
        await self._sleep(pause)
