"""The one error table (api/errors.py): the JSON API, the privacy centre and the DPO console
answer each domain error with the same status, and a page stays a page whatever fails."""

from __future__ import annotations

import pytest
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.testing import RequestFactory

from api.dpo import pages as dpo_pages
from api.privacy import pages as privacy
from api.problems import exception_handlers
from vault.crypto import IntegrityCheckFailed, KeyringError
from vault.errors import (
    AccessDenied,
    Conflict,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    RateLimited,
    Unavailable,
    VaultError,
)

#: One error of each row of the table, with the status every surface answers it with.
ERRORS = [
    (InvalidInput("bad", {"email": "not an address"}), 422),
    (AccessDenied("purpose_not_allowed", "denied"), 403),
    (NotFound("no such thing"), 404),
    (Conflict("already done"), 409),
    (RateLimited("slow down", retry_after=7), 429),
    (IntegrityFailure(), 500),
    (IntegrityCheckFailed(), 500),
    (Unavailable("down"), 503),
    (KeyringError("gone"), 503),
    (VaultError("odd"), 400),
    (RuntimeError("a bug"), 500),
]


def _json_status(exc: Exception) -> int:
    request = RequestFactory().get("/v1/anything")
    handler = next(h for t, h in exception_handlers.items() if isinstance(exc, t))
    return handler(request, exc).status_code


def _page(surface, exc: Exception, path: str):
    return surface.page_error(RequestFactory().get(path, headers={"accept-language": "en"}), exc)


@pytest.mark.parametrize(("exc", "status"), ERRORS, ids=lambda v: type(v).__name__)
def test_every_surface_answers_a_domain_error_with_the_same_status(exc, status):
    """problem+json, a privacy-centre page and a console page agree on the status of each
    error (the console used to answer a conflict or a rate limit with 400, the privacy
    centre a rate limit or a denial with 503)."""
    assert _json_status(exc) == status
    assert _page(privacy, exc, "/privacy").status_code == status
    assert _page(dpo_pages, exc, "/dpo/audit").status_code == status


@pytest.mark.parametrize("surface", [privacy, dpo_pages], ids=["privacy", "dpo"])
def test_pages_say_the_same_for_the_same_refusal(surface):
    """A CSRF refusal and an unknown thing get the table's heading on both surfaces, and a
    rate limit keeps its Retry-After on a page too."""
    page = _page(surface, PermissionDeniedException(), "/x")
    assert (page.status_code, page.context["heading"]) == (403, "Form expired")
    page = _page(surface, NotFoundException(), "/x")
    assert (page.status_code, page.context["heading"]) == (404, "Not found")
    page = _page(surface, RateLimited("slow down", retry_after=7), "/x")
    assert page.headers["Retry-After"] == "7"


@pytest.mark.parametrize("surface", [privacy, dpo_pages], ids=["privacy", "dpo"])
def test_a_page_never_falls_back_to_problem_json(surface):
    """The page surfaces register a handler for every class the app answers, so an
    unexpected failure on a page is a page (it used to be problem+json on /privacy)."""
    controller = privacy.PrivacyPages if surface is privacy else dpo_pages.DpoPages
    assert set(controller.exception_handlers) == set(exception_handlers)
    assert {controller.exception_handlers[t] for t in exception_handlers} == {surface.page_error}
