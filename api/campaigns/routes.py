"""Campaign routes: planning (create, audience), booking by priority (preview, book),
closing (cancel, sent) and forecasts.

Who: `marketing` and `admin` plan, book and read; an audience naming customers is
uploaded by `writer` or `admin` only (the CRM's segment), so a marketer never chooses
individual customers and then reads their counts. Every count a route answers is masked
below k (`vault.campaigns.masking`), a forecast's and a booking's counts also where the
shown rest would give a masked one away, and all of them when the audience differs from
another campaign's by fewer than k customers (`hidden_reason`); forecast and preview reads
are audited.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Controller, Request, Response, get, post, put
from litestar.params import JSONBody, Parameter

from api.auth import actor_of, roles
from api.campaigns.report_schemas import CalendarOut
from api.campaigns.reports import calendar_out
from api.campaigns.schemas import (
    AudienceIn,
    AudienceOut,
    BookIn,
    BookingOut,
    CampaignIn,
    CampaignListOut,
    CampaignOut,
    DisplacementOut,
    ForecastOut,
    HoldOut,
    ReleasedOut,
)
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.problems import problem
from api.query_params import query, reject_unknown_query
from api.schemas import Uuid, uuid_path
from vault.admin.clients import ClientInfo, Role
from vault.campaigns import audience, booking, calendar, forecast, holds, records
from vault.campaigns.masking import masked, partition, shown
from vault.context import VaultContext

PLANNERS = (Role.MARKETING, Role.ADMIN)


def hold_out(vault: VaultContext, h: booking.HeldCampaign) -> HoldOut:
    return HoldOut(h.campaign_id, h.name, masked(h.count, vault.pressure_rules.report_min_count))


def campaign_out(
    vault: VaultContext, c: records.Campaign, held: list[holds.Hold] | None = None
) -> CampaignOut:
    k = vault.pressure_rules.report_min_count
    return CampaignOut(
        id=c.id, name=c.name, brand=c.brand, type=c.type, channel=c.channel,
        priority=c.priority, rank=c.rank, purpose=c.purpose, touchpoint=c.touchpoint,
        window_start=c.window_start.isoformat(), window_end=c.window_end.isoformat(),
        month=c.month, audience=c.audience_kind, owner=c.owner,
        state=c.state,  # type: ignore[arg-type]
        held_by=[HoldOut(h.calamity.id, h.calamity.name, masked(h.members, k))
                 for h in held or ()],
    )  # fmt: skip


async def campaigns_out(vault: VaultContext, camps: list[records.Campaign]) -> list[CampaignOut]:
    """The campaigns, each with the calamity campaigns holding it."""
    held = await holds.held_by_all(vault, camps)
    return [campaign_out(vault, c, held[c.id]) for c in camps]


NEAR: Final = "near_audience"


async def booking_out(
    vault: VaultContext, campaign_id: str, o: booking.BookingOutcome
) -> BookingOut:
    """The outcome's counts: booked, blocked and no basis add up to the audience, so they
    are masked as a forecast's are; all hidden for an audience near another's."""
    k = vault.pressure_rules.report_min_count
    near = await forecast.audience_is_near(vault, campaign_id)
    total, parts = partition(
        o.audience, {"booked": o.booked, "blocked": o.blocked, "no_basis": o.no_basis}, k, near
    )
    return BookingOut(
        campaign=campaign_id,
        audience=total,
        booked=parts["booked"],
        blocked_by_basket=parts["blocked"],
        missing_basis=parts["no_basis"],
        displaced=[
            DisplacementOut(d.campaign_id, d.name, shown(d.count, k, near)) for d in o.displaced
        ],
        holds=[hold_out(vault, h) for h in o.holds],
        held_by=[hold_out(vault, h) for h in o.held_by],
        hidden_reason=NEAR if near else None,
    )


class CampaignController(Controller):
    path = "/v1/campaigns"
    tags = ["campaigns"]
    before_request = staticmethod(reject_unknown_query)

    @post(
        "/",
        operation_id="createCampaign",
        summary="Plan a campaign (a draft)",
        description=(
            "Stores a draft campaign owned by the caller. Channel and type must fit the "
            "purpose, brand and priority must be the rules'; a priority above `normal` "
            "must be granted to the caller (422). The send window must end after it starts "
            "and lie within one basket month."
        ),
        status_code=201,
        opt={**query(), **roles(*PLANNERS)},
        responses=problems(*AUTHED, 413, 422),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[CampaignIn], vault: Vault
    ) -> CampaignOut:
        client: ClientInfo = request.user
        draft = records.CampaignDraft(
            name=data.name, brand=data.brand, purpose=data.purpose,
            window_start=data.window_start, window_end=data.window_end, channel=data.channel,
            type=data.type, priority=data.priority, rank=data.rank, touchpoint=data.touchpoint,
            audience_kind=records.AudienceKind(data.audience),
        )  # fmt: skip
        camp = await records.create(vault, actor_of(request), client.purposes, draft)
        return (await campaigns_out(vault, [camp]))[0]

    @get(
        "/",
        operation_id="listCampaigns",
        summary="Campaigns, optionally of one basket month, in arbitration order",
        opt={**query("month"), **roles(*PLANNERS, Role.DPO)},
        responses=problems(*AUTHED, 422),
    )
    async def list_all(
        self,
        vault: Vault,
        month: str | None = Parameter(
            required=False,
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            max_length=7,
            description="basket month, YYYY-MM",
        ),  # fmt: skip
    ) -> CampaignListOut:
        items = await records.list_campaigns(vault, month=month)
        return CampaignListOut(items=await campaigns_out(vault, items))

    @get(
        "/calendar",
        operation_id="campaignCalendar",
        summary="The calendar: a month's planned and booked campaigns by ISO week",
        description=(
            "For one basket month (default: the current one): each draft or booked "
            "campaign with its forecast, the ISO weeks its window touches, per week the "
            "customers in audiences of three or more brands (the overlap), and the planned "
            "campaigns a calamity campaign's cool-down would hold. Counts below k are "
            'shown as "< k"; a forecast\'s counts as in `campaignForecast` ("hidden" where '
            "they would give a masked one away, all of them with `hidden_reason`). Audited."
        ),
        opt={**query("month"), **roles(*PLANNERS, Role.DPO)},
        responses=problems(*AUTHED, 422),
    )
    async def calendar_view(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        month: str | None = Parameter(
            required=False,
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            max_length=7,
            description="basket month, YYYY-MM",
        ),  # fmt: skip
    ) -> CalendarOut:
        the_month = month or vault.pressure_rules.month_of(vault.clock.now())
        return calendar_out(vault, await calendar.calendar(vault, actor_of(request), the_month))

    @get(
        "/{campaign_id:str}",
        operation_id="getCampaign",
        summary="One campaign",
        opt={**query(), **roles(*PLANNERS, Role.DPO)},
        responses=problems(*AUTHED, 404),
    )
    async def get_one(
        self, vault: Vault, campaign_id: Uuid = uuid_path("The campaign's id")
    ) -> CampaignOut:
        return (await campaigns_out(vault, [await records.get(vault, campaign_id)]))[0]

    @put(
        "/{campaign_id:str}/audience",
        operation_id="setCampaignAudience",
        summary="Replace a draft list campaign's audience with an uploaded file",
        description=(
            "NDJSON or CSV of subject ids or external references (customer numbers). "
            "Unknown and erased customers are left out and counted in `unmatched`; no "
            "value is echoed. Only the CRM (`writer`) or `admin` uploads customers: a "
            "marketer plans on segments, never on chosen individuals. 409 unless the "
            "campaign is a draft with a list audience."
        ),
        opt={**query(), **roles(Role.WRITER, Role.ADMIN)},
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def set_audience(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[AudienceIn],
        vault: Vault,
        campaign_id: Uuid = uuid_path("The campaign's id"),
    ) -> AudienceOut:
        await records.get(vault, campaign_id)  # an unknown campaign is a 404 before the file
        pairs = audience.parse_upload(data.file, data.format)
        done = await audience.set_audience(vault, actor_of(request), campaign_id, pairs)
        return AudienceOut(lines=done.lines, members=done.members, unmatched=done.unmatched)

    @post(
        "/{campaign_id:str}/booking-preview",
        operation_id="previewCampaignBooking",
        summary="What booking the campaign would do now: counts, and whom it displaces",
        description=(
            "Nothing changes. Lists per campaign served later how many of its bookings "
            "this one would displace; for a calamity campaign, the planned campaigns its "
            "cool-down would hold (`holds`), and the booked calamity campaigns holding this "
            "one (`held_by`). Audited as a report read."
        ),
        status_code=200,
        opt={**query(), **roles(*PLANNERS)},
        responses=problems(*AUTHED, 404, 409),
    )
    async def preview(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        campaign_id: Uuid = uuid_path("The campaign's id"),
    ) -> BookingOut:
        camp, outcome = await booking.preview(vault, actor_of(request), campaign_id)
        return await booking_out(vault, camp.id, outcome)

    @post(
        "/{campaign_id:str}/book",
        operation_id="bookCampaign",
        summary="Book a draft campaign: hold its points in each member's basket by priority",
        description=(
            "Holds the campaign's points for the basket month of its window in every "
            "member's basket with room, displacing bookings of campaigns served later "
            "where that makes room. A booking that would displace others is refused with "
            "409 (`displaced` lists the counts) unless `confirm_displacement` is true. "
            "Lookups naming the campaign (`contact.campaign`) then use the holds. Booking "
            "a calamity campaign holds the planned campaigns whose window starts in its "
            "cool-down (`holds`, with counts): lookups naming a held campaign are denied "
            "`contact_blocked_by_calamity` for the members it reaches until the cool-down "
            "ends or it is cancelled; their booked points stay reserved."
        ),
        status_code=200,
        opt={**query(), **roles(*PLANNERS)},
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def book(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[BookIn],
        vault: Vault,
        campaign_id: Uuid = uuid_path("The campaign's id"),
    ) -> Response[BookingOut]:
        try:
            outcome = await booking.book(
                vault, actor_of(request), campaign_id,
                confirm_displacement=data.confirm_displacement,
            )  # fmt: skip
        except booking.DisplacementNotConfirmed as exc:
            told = await booking_out(vault, campaign_id, exc.outcome)
            refused: Response[Any] = problem(
                request, 409, str(exc), type_="urn:tresor:problem:displacement-unconfirmed",
                reason="displacement_unconfirmed",
                displaced=[
                    {"campaign": d.campaign, "name": d.name, "count": d.count}
                    for d in told.displaced
                ],
            )  # fmt: skip
            return refused
        return Response(await booking_out(vault, campaign_id, outcome))

    @post(
        "/{campaign_id:str}/cancel",
        operation_id="cancelCampaign",
        summary="Cancel a draft or booked campaign; its holds are released",
        status_code=200,
        opt={**query(), **roles(*PLANNERS)},
        responses=problems(*AUTHED, 404, 409),
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        campaign_id: Uuid = uuid_path("The campaign's id"),
    ) -> ReleasedOut:
        n = await booking.cancel(vault, actor_of(request), campaign_id)
        k = vault.pressure_rules.report_min_count
        return ReleasedOut(campaign=campaign_id, state="cancelled", released=masked(n, k))

    @post(
        "/{campaign_id:str}/sent",
        operation_id="markCampaignSent",
        summary="Close a booked campaign as sent; holds no contact used are released",
        status_code=200,
        opt={**query(), **roles(*PLANNERS)},
        responses=problems(*AUTHED, 404, 409),
    )
    async def sent(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        campaign_id: Uuid = uuid_path("The campaign's id"),
    ) -> ReleasedOut:
        n = await booking.mark_sent(vault, actor_of(request), campaign_id)
        k = vault.pressure_rules.report_min_count
        return ReleasedOut(campaign=campaign_id, state="sent", released=masked(n, k))

    @get(
        "/{campaign_id:str}/forecast",
        operation_id="campaignForecast",
        summary="Forecast: reachable, blocked by basket, preferences, quiet hours, no basis",
        description=(
            "Counts of the campaign's audience; each below `min_count` (the policy's "
            '`report_min_count`) is shown as "< k". The reasons add up to the audience, so '
            'beside a masked one the smallest shown ones are "hidden" until 2k are out of '
            "sight; all are hidden (`hidden_reason`) when the audience differs from another "
            "campaign's by fewer than k customers. Audited as a report read."
        ),
        opt={**query(), **roles(*PLANNERS, Role.DPO)},
        responses=problems(*AUTHED, 404),
    )
    async def forecast(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        campaign_id: Uuid = uuid_path("The campaign's id"),
    ) -> ForecastOut:
        camp, f = await forecast.forecast(vault, actor_of(request), campaign_id)
        k = vault.pressure_rules.report_min_count
        return ForecastOut(
            campaign=camp.id, state=camp.state, **forecast.cells(f, k), min_count=k,
            hidden_reason=NEAR if f.near_audience else None,
        )  # fmt: skip
