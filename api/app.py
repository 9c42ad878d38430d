"""The Litestar application: routes, auth, problem+json, logs, OpenAPI.

`create_app` takes an already opened `VaultContext` (tests, embedding) or opens one from
settings at start-up, so a bad purpose catalogue or an unreadable keyring stops the start.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.serialization import encode_json
from litestar.template.config import TemplateConfig

from api import i18n, openapi_docs, openapi_links
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
from api.bases.confirm_pages import ConfirmController, PageController
from api.bases.consents import ConsentController
from api.campaigns.reports import PlanningReportController
from api.campaigns.routes import CampaignController
from api.dpo import CONTROLLERS as DPO_CONTROLLERS
from api.dpo.sso import oidc_client
from api.gc_tuning import tune_gc_for_long_running
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
from api.periodic_jobs import background_jobs_for, stop_jobs
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
from vault.admin.authentication import ClientAuthenticator
from vault.admin.certificates import CertificateAuthenticator
from vault.admin.limits import counter_store
from vault.admin.quotas import QuotaGate
from vault.catalogue.loader import load_policies
from vault.context import VaultContext
from vault.rights import selfservice
from vault.settings import Settings

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
    long_running: bool = False,
) -> Litestar:
    """The app. Background jobs (audit sealer, ...) run by default only when the app opens
    its own vault (`tresor serve`) and `Settings.inline_jobs` allows; tests that inject a
    vault drive the jobs themselves. `long_running` (set only by `tresor serve` and the ASGI
    entry point) tunes the process's garbage collection after start-up: that is a setting
    of the whole process, so an app built inside another program (a test, an embedding)
    leaves it alone."""
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
        if long_running:
            tune_gc_for_long_running()

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
    openapi_links.document_links(app.openapi_schema)
    return app


def openapi_document(app: Litestar | None = None) -> dict[str, Any]:
    """The OpenAPI document as committed in openapi/openapi.json."""
    app = app or create_app(Settings(), configure_logs=False)
    # Round-trip through Litestar's encoder: the schema object holds example values as structs.
    return msgspec.json.decode(encode_json(app.openapi_schema.to_schema()))
