"""Lifting a restriction of processing (Art. 18(3)) by a DPO; the customer is told."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody

from api.auth import actor_of, roles
from api.deps import Vault
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, problems
from api.query_params import reject_unknown_query
from api.rights.schemas import RestrictionLift, RestrictionLifted
from api.schemas import uuid_path
from vault.admin.clients import Role
from vault.rights.restriction import lift_restriction


class RestrictionController(Controller):
    path = "/v1/subjects/{subject_id:str}/restriction"
    tags = ["requests"]
    opt = roles(Role.DPO)
    before_request = staticmethod(reject_unknown_query)

    @post(
        "/lift",
        operation_id="liftRestriction",
        operation_class=IdempotentOperation,
        summary="End a restriction of processing (Art. 18(3)); the customer is told",
        description=(
            "The subject is active again: lookups for its purposes are decided as before the "
            "restriction. The customer is told by e-mail (German and English, with the reason) "
            "before the change commits when an address is stored; `customer_mailed` false "
            "means no address is stored and the customer must be told by letter. Audited "
            "(`dpo:subject:lift_restriction`); recipients are notified "
            "(`subject.restriction_lifted`). 409 when the subject is not restricted."
        ),
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 413, 422, 503),
    )
    async def lift(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RestrictionLift],
        vault: Vault,
        subject_id: str = uuid_path("The subject's pseudonymous id"),
    ) -> RestrictionLifted:
        mailed = await lift_restriction(vault, actor_of(request), subject_id, data.reason)
        return RestrictionLifted(subject_id=subject_id, status="active", customer_mailed=mailed)
