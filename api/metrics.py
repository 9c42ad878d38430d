"""Prometheus metrics: request counts and latency by route template, lookup decisions,
recipient notices.

Labels are route templates, methods, status codes, purpose ids from the catalogue,
recipient names and reason codes: never a raw path, identifier or any contact data. With
several worker processes (`tresor serve --workers N`) the counters are aggregated across
workers through prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `serve`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from api.auth import public
from api.openapi_docs import PUBLIC

REQUESTS = Counter("tresor_http_requests_total", "HTTP responses", ["method", "route", "status"])
LATENCY = Histogram(
    "tresor_http_request_seconds",
    "Time to the first response byte",
    ["route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LOOKUPS = Counter(
    "tresor_lookup_decisions_total",
    "Purpose-checked lookups by outcome (each also has an audit event)",
    ["purpose", "decision", "reason"],
)
QUOTA_EXCEEDED = Counter(
    "tresor_client_quota_exceeded_total",
    "Requests refused because the client's quota was used up (the first of each window "
    "also has an audit event)",
    ["client", "quota"],
)


def observe_quota_exceeded(client: str, quota: str) -> None:
    """`client` is a client's name (never its key), `quota` `rate` or `daily-lookups`."""
    QUOTA_EXCEEDED.labels(client, quota).inc()


AUDIT_SEALED = Counter(
    "tresor_audit_sealed_events_total", "Audit events this process chained into the MAC chain"
)
AUDIT_UNSEALED = Gauge(
    "tresor_audit_unsealed_events",
    "Audit events appended after the chain head and not sealed yet (the sealer's backlog)",
    multiprocess_mode="livemax",
)
AUDIT_LAST_SEAL = Gauge(
    "tresor_audit_last_seal_timestamp_seconds",
    "When this process last completed a sealing round (it held the sealer lock)",
    multiprocess_mode="livemax",
)


def observe_seal(sealed: int, completed: bool, unsealed: int | None) -> None:
    """After a sealer round: events sealed, whether the round ran (held the lock), and the
    backlog when it was measured."""
    if sealed:
        AUDIT_SEALED.inc(sealed)
    if completed:
        AUDIT_LAST_SEAL.set(time.time())
    if unsealed is not None:
        AUDIT_UNSEALED.set(unsealed)


MAIL_OUTBOX = Gauge(
    "tresor_mail_outbox",
    "Mails in the outbox by status (pending: waiting for the mail server; failed: given up "
    "after the retry window, shown to the DPO). Counts only, never an address",
    ["status"],
    multiprocess_mode="livemax",
)
MAILS_SENT = Counter("tresor_mails_sent_total", "Mails the outbox's sender handed over")
MAILS_RETRIED = Counter(
    "tresor_mails_retried_total", "Mail attempts that failed and were scheduled again (back-off)"
)
MAILS_FAILED = Counter(
    "tresor_mails_failed_total", "Mails given up after the retry window (shown to the DPO)"
)


def observe_mail(sent: int, retried: int, failed: int, counts: Mapping[str, int] | None) -> None:
    """After a run of the mail sender: its counts, and the outbox by status when measured."""
    if sent:
        MAILS_SENT.inc(sent)
    if retried:
        MAILS_RETRIED.inc(retried)
    if failed:
        MAILS_FAILED.inc(failed)
    for status, n in (counts or {}).items():
        MAIL_OUTBOX.labels(status).set(n)


NOTICES_QUEUED = Counter(
    "tresor_notifications_queued_total",
    "Recipient notices this process's fan-out created (the jobs process; a request that "
    "fans out its own change at once is not counted here)",
    ["recipient"],
)
NOTICES_DELIVERED = Counter(
    "tresor_notifications_delivered_total",
    "Recipient notices delivered (2xx from the webhook, or the JetStream publish ack)",
    ["recipient"],
)
NOTICES_RETRIED = Counter(
    "tresor_notifications_retried_total",
    "Delivery attempts that failed and were scheduled again (back-off)",
    ["recipient"],
)
NOTICES_FAILED = Counter(
    "tresor_notifications_failed_total",
    "Recipient notices given up after the retry window (shown to the DPO)",
    ["recipient"],
)
NOTICE_LAG = Histogram(
    "tresor_notification_lag_seconds",
    "From the change's commit (the event's time) to the notice's delivery",
    ["recipient"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0, 86400.0),
)


class NotificationMetrics:
    """The deliverer's observer (`vault.recipients.delivery.DeliveryObserver`): labels are
    recipient names, which an admin chose; never a subject id, URL or payload."""

    def queued(self, counts: Mapping[str, int]) -> None:
        for recipient, n in counts.items():
            NOTICES_QUEUED.labels(recipient).inc(n)

    def delivered(self, recipient: str, lag_seconds: float) -> None:
        NOTICES_DELIVERED.labels(recipient).inc()
        NOTICE_LAG.labels(recipient).observe(max(0.0, lag_seconds))

    def retried(self, recipient: str) -> None:
        NOTICES_RETRIED.labels(recipient).inc()

    def failed(self, recipient: str) -> None:
        NOTICES_FAILED.labels(recipient).inc()


#: Labelled children by (method, route, status): `labels()` takes a lock and builds keys on
#: every call; routes are templates, so this stays as small as the route table.
_RESPONSE_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_response(method: str, route: str, status: int, started: float | None) -> None:
    key = (method, route, status)
    children = _RESPONSE_CHILDREN.get(key)
    if children is None:
        children = _RESPONSE_CHILDREN[key] = (
            REQUESTS.labels(method, route, str(status)),
            LATENCY.labels(route),
        )
    children[0].inc()
    if started is not None:
        children[1].observe(time.perf_counter() - started)


_LOOKUP_CHILDREN: dict[tuple[str, str, str], Any] = {}


def observe_lookup(purpose: str | None, decision: str, reason: str = "") -> None:
    """`purpose` is a catalogue id or None (callers never pass client input here)."""
    key = (purpose or "<unknown>", decision, reason)
    child = _LOOKUP_CHILDREN.get(key)
    if child is None:
        child = _LOOKUP_CHILDREN[key] = LOOKUPS.labels(*key)
    child.inc()


def _exposition(multiproc_dir: Path | None) -> bytes:
    if multiproc_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


@get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics (no personal data in any label)",
    tags=["operations"],
    opt=public(),
    security=PUBLIC,
    media_type=CONTENT_TYPE_LATEST,
    sync_to_thread=False,
)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    settings = request.app.state.vault.settings
    return Response(_exposition(settings.metrics_multiproc_dir), media_type=CONTENT_TYPE_LATEST)
