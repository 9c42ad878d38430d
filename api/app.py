"""The Litestar application: routes, auth, problem+json, logs, OpenAPI.

`create_app` takes an already opened `VaultContext` (tests, embedding) or opens one from
settings at start-up, so a bad purpose catalogue or an unreadable keyring stops the start.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.serialization import encode_json
from litestar.template.config import TemplateConfig

from api import i18n, metrics, openapi_docs
from api.admin.clients import ClientController
from api.allow import allow_header_hook
from api.audit.documents import DpoConsentController, RopaController
from api.audit.trail import AuditController
from api.auth import (
    PUBLIC_ROUTE,
    BearerKeyMiddleware,
    FailedAuthLimiter,
    check_every_route_guarded,
    public,
)
from api.background import PeriodicJob
from api.bases.confirm_pages import ConfirmController, PageController
from api.bases.consents import ConsentController
from api.campaigns.reports import PlanningReportController
from api.campaigns.routes import CampaignController
from api.dpo import CONTROLLERS as DPO_CONTROLLERS
from api.dpo.sso import oidc_client
from api.idempotency import IdempotencyMiddleware
from api.logging import RequestIdMiddleware, before_send, configure_logging
from api.metrics import metrics_endpoint
from api.openapi_purpose_fit import catalogue_purpose_fit
from api.openapi_schema import StrictStructSchemaPlugin, catalogue_vocabularies
from api.operations.health import HealthController
from api.operations.mail_outbox import MailOutboxController
from api.outreach.contacts import ContactController
from api.outreach.followups import FollowupController
from api.outreach.history import ContactHistoryController
from api.outreach.preferences import PreferenceController
from api.outreach.reports import ReportController
from api.privacy import CONTROLLERS as PRIVACY_CONTROLLERS
from api.problems import exception_handlers
from api.recipients.routes import NotificationController, RecipientController
from api.request_body import DepthLimitedRequest
from api.rights.requests import ExportController, RequestController
from api.rights.restriction import RestrictionController
from api.rights.selfservice import (
    SelfIdentityController,
    SelfServiceController,
    SelfSessionController,
)
from api.subjects.bulk import BulkLookupController
from api.subjects.identity_changes import IdentityChangeController
from api.subjects.lookup import LookupController
from api.subjects.subjects import SubjectController
from api.web.headers import add_security_headers
from vault import mail_outbox
from vault.admin.authentication import ClientAuthenticator
from vault.admin.certificates import CertificateAuthenticator
from vault.admin.housekeeping import purge_transient
from vault.admin.limits import counter_store
from vault.admin.quotas import QuotaGate
from vault.audit import chain as audit_chain
from vault.audit import partitions
from vault.catalogue.loader import load_policies
from vault.context import VaultContext
from vault.recipients.delivery import Deliverer, RunReport, outbox_listener
from vault.rights import selfservice
from vault.rights.requests import settle_awaiting
from vault.settings import Settings
from vault.storage.listen import ChannelListener

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_BODY_BYTES = 64 * 1024
VERSION = metadata.version("tresor")  # pyproject.toml's, the one version string


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Tresor",
        version=VERSION,
        description=(
            "Consent and contact-data privacy vault. Internal systems resolve contact data "
            "only through the purpose-checked lookup; every access is audited."
        ),
        path="/schema",
        # The API documents take no key: their router carries the one public marker.
        openapi_router=Router(
            "/schema",
            route_handlers=openapi_docs.asset_routers(opt=public()),
            include_in_schema=False,
            opt=public(),
        ),
        render_plugins=openapi_docs.render_plugins(),
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="API key issued by `tresor clients create`",
                ),
                "SelfSession": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description=(
                        "Self-service session token of a data subject, from "
                        "`POST /self/v1/session/verify` (short-lived)"
                    ),
                ),
            }
        ),
        security=[{"ApiKey": []}],
        tags=[
            Tag(name="lookup", description="Purpose-checked reads of contact data"),
            Tag(name="subjects", description="Store and rectify contact data"),
            Tag(name="consents", description="Consents and other lawful bases"),
            Tag(name="administration", description="API clients"),
            Tag(name="operations", description="Health and readiness, and the mail outbox"),
            Tag(
                name="requests",
                description="Data-subject requests against their deadlines, and the export",
            ),
            Tag(
                name="audit",
                description="For the data-protection officer: the audit trail, access and "
                "consent statistics, chain integrity, consent proof, record of processing",
            ),
            Tag(
                name="follow-ups",
                description="Contacts the customer asked for, kept inside their due window",
            ),
            Tag(
                name="self-service",
                description="The privacy centre for data subjects: sign in with a mailed "
                "code, see and manage one's own data",
            ),
        ],
        use_handler_docstrings=False,
    )


#: Every route of the app; each names its roles or is marked public (`api.auth`).
ROUTE_HANDLERS: list[Any] = [
    metrics_endpoint,
    HealthController,
    PageController,
    *PRIVACY_CONTROLLERS,
    SelfSessionController,
    SelfServiceController,
    SelfIdentityController,
    ConfirmController,
    SubjectController,
    ConsentController,
    PreferenceController,
    LookupController,
    ContactController,
    FollowupController,
    ContactHistoryController,
    ReportController,
    CampaignController,
    PlanningReportController,
    BulkLookupController,
    ClientController,
    RecipientController,
    NotificationController,
    RequestController,
    IdentityChangeController,
    ExportController,
    RestrictionController,
    MailOutboxController,
    AuditController,
    DpoConsentController,
    RopaController,
    *DPO_CONTROLLERS,
]


def _own_jobs(settings: Settings, vault: VaultContext | None) -> bool:
    """Whether the app runs the periodic jobs when not told: only with a vault of its own
    (serving, not a test's app), and only where `Settings.inline_jobs` says so."""
    return vault is None and settings.inline_jobs


def create_app(
    settings: Settings | None = None,
    *,
    vault: VaultContext | None = None,
    configure_logs: bool = True,
    background_jobs: bool | None = None,
) -> Litestar:
    """The app. Background jobs (audit sealer, ...) run by default only when the app opens
    its own vault (`tresor serve`) and `Settings.inline_jobs` allows; tests that inject a
    vault drive the jobs themselves."""
    settings = settings or (vault.settings if vault else Settings.from_env())
    if configure_logs:
        configure_logging(settings.log_level)

    async def open_vault(app: Litestar) -> None:
        ctx = vault or VaultContext.open(settings)
        app.state.vault = ctx
        app.state.authenticator = ClientAuthenticator(ctx, settings.client_cache_seconds)
        app.state.limits = counter_store(ctx)
        app.state.failed_auth = FailedAuthLimiter(
            ctx, app.state.limits, limit=ctx.settings.failed_auth_limit
        )
        app.state.quotas = QuotaGate(ctx, app.state.limits)
        app.state.oidc = oidc_client(ctx)
        app.state.certificates = CertificateAuthenticator(ctx, settings.client_cache_seconds)
        app.state.owns_vault = vault is None
        app.state.jobs = []
        if background_jobs if background_jobs is not None else _own_jobs(settings, vault):
            app.state.jobs = background_jobs_for(ctx)
            for job in app.state.jobs:
                job.start()
        if vault is None:  # serving (`tresor serve`), not a test's app
            _tune_gc_for_serving()

    async def close_vault(app: Litestar) -> None:
        await selfservice.wait_for_mail()  # sign-in codes already promised go out
        if getattr(app.state, "jobs", []):
            await stop_jobs(app.state.vault, app.state.jobs)
        if getattr(app.state, "oidc", None) is not None:
            await app.state.oidc.close()
        if getattr(app.state, "authenticator", None) is not None:
            await app.state.authenticator.drain()  # the last-use writes still under way
        if getattr(app.state, "limits", None) is not None:
            await app.state.limits.close()
        if getattr(app.state, "owns_vault", False):
            await app.state.vault.close()

    async def provide_vault(state: State) -> VaultContext:
        return state.vault

    set_allow, bind_allow = allow_header_hook()
    app = Litestar(
        route_handlers=ROUTE_HANDLERS,
        dependencies={"vault": Provide(provide_vault)},
        middleware=[
            RequestIdMiddleware,
            DefineMiddleware(BearerKeyMiddleware, exclude_from_auth_key=PUBLIC_ROUTE),
            IdempotencyMiddleware,
        ],
        exception_handlers=exception_handlers,
        before_send=[before_send, add_security_headers, set_allow],
        plugins=[
            StrictStructSchemaPlugin(
                catalogue_vocabularies(policies := load_policies(settings.policies_dir)),
                catalogue_purpose_fit(policies),
                policies,
            )
        ],
        on_startup=[open_vault],
        on_shutdown=[close_vault],
        openapi_config=openapi_config(),
        # Jinja2 with the i18n extension: `_()` in the pages translates into the page's `lang`.
        template_config=TemplateConfig(
            instance=JinjaTemplateEngine.from_environment(i18n.jinja_environment(TEMPLATES))
        ),
        request_max_body_size=MAX_BODY_BYTES,
        request_class=DepthLimitedRequest,
        debug=False,
    )
    bind_allow(app)
    check_every_route_guarded(app)  # default deny: refuse to start with an unguarded route
    openapi_docs.document_operations(app.openapi_schema)
    openapi_docs.document_validation_answers(app.openapi_schema)
    openapi_docs.document_request_id(app.openapi_schema)
    return app


def _tune_gc_for_serving() -> None:
    """Fewer, cheaper garbage collections while serving.

    Everything built at start (the app, catalogues, compiled statements) lives for the whole
    process: `gc.freeze()` moves it out of the collector's reach. A request allocates
    thousands of short-lived objects; with CPython's default young-generation threshold
    (700) that meant a collection every few requests and full collections that showed up in
    the lookup benchmark's tail latency. The raised thresholds trade some memory for that
    (docs/performance.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def sealer_round(ctx: VaultContext, *, measure_every: float = 5.0) -> Any:
    """One sealer round for the periodic job, reported to /metrics; the backlog is counted
    at most every `measure_every` seconds (one indexed count, no write lock). The sealer
    also checkpoints a head that stayed uncovered for `TRESOR_AUDIT_CHECKPOINT_SECONDS`."""
    next_count = 0.0
    sealer = audit_chain.Sealer(ctx)

    async def run() -> None:
        nonlocal next_count
        report = await sealer.round()
        unsealed = None
        if time.monotonic() >= next_count:
            next_count = time.monotonic() + measure_every
            unsealed = await audit_chain.unsealed_count(ctx)
        metrics.observe_seal(report.sealed, report.head_position >= 0, unsealed)

    return run


async def stop_jobs(ctx: VaultContext, jobs: list[PeriodicJob]) -> None:
    """Stop the periodic jobs after their current run, then seal everything appended so far
    (a clean shutdown, inline or in the jobs process, leaves nothing unsealed)."""
    for job in jobs:
        await job.stop()
    await audit_chain.seal_all(ctx, max_wait_seconds=12.0)


def background_jobs_for(ctx: VaultContext) -> list[PeriodicJob]:
    """The periodic jobs every `tresor serve` process runs."""
    jobs = [
        PeriodicJob("audit-sealer", ctx.settings.seal_interval, sealer_round(ctx)),
    ]
    if ctx.engine.dialect.name == "postgresql":
        # Monthly partitions of the audit trail (issue 19): the months ahead exist before
        # their first event; runs at start and hourly, race-safe across nodes.
        jobs.append(
            PeriodicJob(
                "audit-partitions", partitions.ENSURE_INTERVAL_SECONDS, lambda: _partitions(ctx)
            )
        )
    if ctx.settings.retention_interval > 0:
        jobs.append(
            PeriodicJob("retention", ctx.settings.retention_interval, lambda: _retention(ctx))
        )
    if ctx.settings.notify_interval > 0:
        # Recipient notices (issue 16): fan out new domain events and deliver what is due.
        # In the jobs process on PostgreSQL (claims by row locks, so several nodes share
        # the work), inside `serve` on SQLite; never on a request's path.
        deliverer = Deliverer(ctx, observer=metrics.NotificationMetrics())
        # On PostgreSQL a committed domain event wakes the job at once (LISTEN/NOTIFY);
        # the interval stays as the poll behind it (and is all SQLite has).
        wake = outbox_listener(ctx)

        async def notify() -> None:
            await wake.start()
            report = await deliverer.run()
            # Requests whose recipients have all confirmed close (Art. 19 GDPR).
            settled = await settle_awaiting(ctx)
            if report != RunReport() or settled:
                # Counts only: no ids, no URLs, no payloads.
                structlog.get_logger("tresor.notify").info(
                    "notify_run", **asdict(report), requests_settled=settled
                )

        jobs.append(
            PeriodicJob(
                "notify",
                ctx.settings.notify_interval,
                notify,
                close=lambda: _close_all(deliverer.close(), wake.close()),
                wake=wake.event,
            )
        )
    if ctx.settings.mail_interval > 0:
        jobs.append(mail_job(ctx))
    return jobs


def mail_job(ctx: VaultContext, *, measure_every: float = 5.0) -> PeriodicJob:
    """The mail outbox's sender (`vault.mail_outbox`): in the jobs process on PostgreSQL
    (claims by row locks, so several nodes share the queue; a queued mail's commit wakes it
    by NOTIFY), inside `serve` on SQLite. Its counts go to /metrics and the log."""
    sender = mail_outbox.MailSender(ctx)
    wake = ChannelListener(lambda: ctx.engine, mail_outbox.MAIL_CHANNEL)
    next_count = 0.0

    async def run() -> None:
        nonlocal next_count
        await wake.start()
        report = await sender.run()
        counts = None
        if time.monotonic() >= next_count:
            next_count = time.monotonic() + measure_every
            counts = await mail_outbox.counts(ctx)
        metrics.observe_mail(report.sent, report.retried, report.failed, counts)
        if report != mail_outbox.SendReport():
            structlog.get_logger("tresor.mail").info("mail_run", **asdict(report))

    return PeriodicJob("mail", ctx.settings.mail_interval, run, close=wake.close, wake=wake.event)


async def _close_all(*closing: Awaitable[object]) -> None:
    for close in closing:
        await close


async def _partitions(ctx: VaultContext) -> None:
    """Create the audit trail's missing monthly partitions; logs the months created."""
    created = await partitions.ensure_ahead(ctx, ctx.clock.now())
    if created:
        structlog.get_logger("tresor.audit").info(
            "audit_partitions_created", months=[m.isoformat() for m in created]
        )


async def _retention(ctx: VaultContext) -> None:
    """One retention sweep; its counts go to the log (no ids, no data)."""
    from vault.audit.archive_lock import ArchiveBusy
    from vault.audit.events import SYSTEM
    from vault.audit.prune import prune
    from vault.rights.retention import run_retention

    report = await run_retention(ctx)
    purged = await purge_transient(ctx)
    # The audit trail's own retention: only months already archived are deleted. While an
    # operator's archive or prune (or another node's job) runs, this round leaves it out.
    try:
        audit_pruned: int | None = (
            await prune(ctx, ctx.controller.audit_retention_months, actor=SYSTEM)
        ).events
    except ArchiveBusy:
        audit_pruned = None
    structlog.get_logger("tresor.retention").info(
        "retention_run", **asdict(report), **asdict(purged), audit_events_pruned=audit_pruned
    )


def openapi_document(app: Litestar | None = None) -> dict[str, Any]:
    """The OpenAPI document as committed in openapi/openapi.json."""
    import msgspec

    app = app or create_app(Settings(), configure_logs=False)
    # Round-trip through Litestar's encoder: the schema object holds example values as structs.
    return msgspec.json.decode(encode_json(app.openapi_schema.to_schema()))
