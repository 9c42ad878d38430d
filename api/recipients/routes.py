"""Recipients over HTTP: administration (admin), deliveries and replay (admin, DPO), and
acknowledgements by the recipient's own client. The CLI offers the same (`cli.py`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from litestar import Controller, Request, get, post, put
from litestar.params import JSONBody, Parameter

from api.auth import actor_of, roles
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.recipients.schemas import (
    AckIn,
    CloseIn,
    DeliveryOverview,
    NoticeOut,
    RecipientCreate,
    RecipientCreated,
    RecipientList,
    RecipientOut,
    ReplayIn,
    ReplayOut,
    RotateIn,
    SecretOut,
    SubscriptionOut,
    SubscriptionsPut,
)
from api.schemas import uuid_path
from vault.admin.clients import Role
from vault.recipients import acks, registry
from vault.recipients.acks import Notice
from vault.recipients.registry import RecipientInfo, Subscription

_NAME = Parameter(description="Recipient name", max_length=100)


def recipient_out(info: RecipientInfo) -> RecipientOut:
    return RecipientOut(
        name=info.name,
        kind=info.kind,
        transport=info.transport,
        target=info.target,
        paused=info.paused_at is not None,
        created_at=info.created_at,
        subscriptions=[
            SubscriptionOut(s.event_type, s.purpose, s.scope) for s in info.subscriptions
        ],
    )


def notice_out(n: Notice) -> NoticeOut:
    return NoticeOut(
        id=n.id,
        recipient=n.recipient,
        event_type=n.event_type,
        subject_id=n.subject_id,
        occurred_at=n.occurred_at,
        status=n.status,
        attempts=n.attempts,
        last_error=n.last_error,
        delivered_at=n.delivered_at,
        ack_outcome=n.ack_outcome,
        acked_at=n.acked_at,
        closed_reason=n.closed_reason,
    )


class RecipientController(Controller):
    path = "/v1/recipients"
    tags = ["recipients"]
    opt = roles(Role.ADMIN)

    @post(
        "/",
        operation_id="createRecipient",
        summary="Register a recipient; a webhook's signing secret is in this response only",
        status_code=201,
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[RecipientCreate], vault: Vault
    ) -> RecipientCreated:
        info, secret = await registry.create_recipient(
            vault,
            actor_of(request),
            name=data.name,
            kind=data.kind,
            transport=data.transport,
            target=data.target,
            subscriptions=[
                Subscription(s.event_type, s.purpose, s.scope) for s in data.subscriptions
            ],
        )
        return RecipientCreated(recipient=recipient_out(info), secret=secret)

    @get("/", operation_id="listRecipients", summary="All recipients", responses=problems(*AUTHED))
    async def list_(self, vault: Vault) -> RecipientList:
        return RecipientList(
            items=[recipient_out(r) for r in await registry.list_recipients(vault)]
        )

    @put(
        "/{name:str}/subscriptions",
        operation_id="setRecipientSubscriptions",
        summary="Replace a recipient's subscriptions",
        description="Scope `all` is for external recipients: for a client recipient it "
        "conflicts with the stored kind (409).",
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def subscribe(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SubscriptionsPut],
        vault: Vault,
        name: str = _NAME,
    ) -> RecipientOut:
        subs = [Subscription(s.event_type, s.purpose, s.scope) for s in data.subscriptions]
        return recipient_out(await registry.set_subscriptions(vault, actor_of(request), name, subs))

    @post(
        "/{name:str}/pause",
        operation_id="pauseRecipient",
        summary="Pause a recipient: its notices wait until it is resumed",
        status_code=200,
        responses=problems(*AUTHED, 404),
        opt=roles(Role.ADMIN, Role.DPO),
    )
    async def pause(
        self, request: Request[Any, Any, Any], vault: Vault, name: str = _NAME
    ) -> RecipientOut:
        return recipient_out(await registry.set_paused(vault, actor_of(request), name, True))

    @post(
        "/{name:str}/resume",
        operation_id="resumeRecipient",
        summary="Resume a paused recipient",
        status_code=200,
        responses=problems(*AUTHED, 404),
        opt=roles(Role.ADMIN, Role.DPO),
    )
    async def resume(
        self, request: Request[Any, Any, Any], vault: Vault, name: str = _NAME
    ) -> RecipientOut:
        return recipient_out(await registry.set_paused(vault, actor_of(request), name, False))

    @post(
        "/{name:str}/secret",
        operation_id="rotateRecipientSecret",
        summary="A new signing secret (in this response only); the old one signs too for "
        "the overlap",
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 413, 422),
        opt=roles(Role.ADMIN, Role.DPO),
    )
    async def rotate(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RotateIn],
        vault: Vault,
        name: str = _NAME,
    ) -> SecretOut:
        secret = await registry.rotate_secret(
            vault, actor_of(request), name, overlap=timedelta(hours=data.overlap_hours)
        )
        return SecretOut(secret=secret)

    @get(
        "/{name:str}/deliveries",
        operation_id="listRecipientDeliveries",
        summary="A recipient's deliveries: counts per state and the newest notices",
        responses=problems(*AUTHED, 404),
        opt=roles(Role.ADMIN, Role.DPO),
    )
    async def deliveries(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        name: str = _NAME,
        status: Literal["pending", "delivered", "failed"] | None = Parameter(
            description="only this state", default=None
        ),
    ) -> DeliveryOverview:
        counts, items = await acks.deliveries_of(vault, actor_of(request), name, status=status)
        return DeliveryOverview(counts=counts, items=[notice_out(n) for n in items])

    @post(
        "/{name:str}/replay",
        operation_id="replayRecipient",
        summary="Send a recipient's notices since a time again (same ids)",
        status_code=200,
        responses=problems(*AUTHED, 404, 413, 422),
        opt=roles(Role.ADMIN, Role.DPO),
    )
    async def replay(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ReplayIn],
        vault: Vault,
        name: str = _NAME,
    ) -> ReplayOut:
        return ReplayOut(queued=await acks.replay(vault, actor_of(request), name, data.since))


class NotificationController(Controller):
    path = "/v1/notifications"
    tags = ["recipients"]

    @post(
        "/{notification_id:str}/ack",
        operation_id="acknowledgeNotification",
        summary="The recipient confirms it acted on a notice (deleted, updated, not held)",
        status_code=200,
        responses=problems(*AUTHED, 404, 413, 422),
        opt=roles(Role.LOOKUP, Role.WRITER),
    )
    async def ack(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[AckIn],
        vault: Vault,
        notification_id: str = uuid_path("The notification's id (its webhook-id)"),
    ) -> NoticeOut:
        notice = await acks.ack(vault, actor_of(request), notification_id, data.outcome)
        return notice_out(notice)

    @post(
        "/{notification_id:str}/close",
        operation_id="closeNotification",
        summary="The DPO closes a notice the recipient never confirmed, with a reason",
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 413, 422),
        opt=roles(Role.DPO),
    )
    async def close(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CloseIn],
        vault: Vault,
        notification_id: str = uuid_path("The notification's id"),
    ) -> NoticeOut:
        return notice_out(await acks.close(vault, actor_of(request), notification_id, data.reason))
