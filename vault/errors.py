"""Domain errors. The API maps each to one problem+json response in one place.

Messages never contain contact data: they name fields and rules, not values.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "vault_error"


class NotFound(VaultError):
    code = "not_found"


class Conflict(VaultError):
    code = "conflict"


class PreconditionFailed(Conflict):
    """The caller's `If-Match` names a state that is no longer the stored one (someone else
    changed it since the caller read it); nothing was changed."""

    code = "precondition_failed"
    reason = "precondition_failed"


class PreconditionRequired(Conflict):
    """The caller had to name the state it replaces (`If-Match`) and did not; nothing was
    changed. Raised by the vault after its own checks, so the refusal is audited like any
    other on that subject."""

    code = "precondition_required"
    reason = "precondition_required"

    def __init__(self) -> None:
        super().__init__("this update needs If-Match with the ETag of the state it replaces")


def precondition_refusal(
    current: int, if_match: frozenset[int] | None
) -> PreconditionFailed | PreconditionRequired | None:
    """Why an update with the caller's `If-Match` (the write counters it names; None: no
    precondition, an empty set: the header was required and missing) may not replace the
    stored state at `current`, or None when it may."""
    if if_match is None:
        return None
    if not if_match:
        return PreconditionRequired()
    if current not in if_match:
        return PreconditionFailed("the stored state changed since it was read")
    return None


class InvalidInput(VaultError):
    """Input broke a domain rule; `errors` maps a field to what is wrong with it."""

    code = "invalid_input"

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class AccessDenied(VaultError):
    """A purpose-checked read was refused; `reason` is one of the `DenyReason` codes."""

    code = "access_denied"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Unavailable(VaultError):
    """Storage, audit, keyring or mailer failed; nothing was revealed or committed."""

    code = "unavailable"


class IntegrityFailure(VaultError):
    """Stored data failed an integrity check (a ciphertext would not open, a blind-index
    entry sits on the wrong row): nothing was revealed and the refusal has been audited as
    a denial with `reason`. The message never says which check failed or on what value."""

    code = "integrity_error"
    reason = "integrity_error"

    def __init__(self) -> None:
        super().__init__("stored data failed an integrity check; nothing was revealed")


class RateLimited(VaultError):
    """Too many attempts in a window; `retry_after` says in how many seconds to try again."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class QuotaExceeded(RateLimited):
    """The client named `client` went over one of its quotas (`policy`: `rate` or
    `daily-lookups`): `quota` units per `window` seconds, of which `remaining` are left (0
    or fewer than asked)."""

    code = "quota_exceeded"

    def __init__(
        self, client: str, policy: str, quota: int, window: int, remaining: int, retry_after: int
    ) -> None:
        super().__init__(f"the client's {policy} quota is used up; try again later", retry_after)
        self.client = client
        self.policy = policy
        self.quota = quota
        self.window = window
        self.remaining = remaining


class Unauthenticated(VaultError):
    """A one-time code or a self-service session was wrong, expired, used up or unknown.

    One error for every such case, so a caller cannot tell which (no enumeration)."""

    code = "unauthenticated"

    def __init__(self, message: str, reason: str = "invalid_credentials") -> None:
        super().__init__(message)
        self.reason = reason


class InvariantViolation(RuntimeError):
    """A state the code rules out was found (a defect, never bad input): raised where an
    `assert` would vanish under `python -O`. Not a VaultError, so the API answers it as
    any unexpected error (500) and nothing is committed."""
