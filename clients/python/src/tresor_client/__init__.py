"""The official Python client of Tresor: typed models (msgspec), a sync (`Tresor`) and an
async (`AsyncTresor`) client on httpx, safe retries with `Idempotency-Key`, conditional
updates with `If-Match`, the NDJSON batch as an iterator, problem+json as exceptions."""

from tresor_client._core import VERSION as __version__
from tresor_client._core import DeprecatedOperation, Result, Retry
from tresor_client.aio import AsyncTresor
from tresor_client.errors import (
    ApiError,
    Conflict,
    Denied,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    RateLimited,
    TransportError,
    TresorError,
    Unauthorized,
    Unavailable,
)
from tresor_client.models import *  # noqa: F403 (the models are the package's vocabulary)
from tresor_client.models import __all__ as _models
from tresor_client.sync import Tresor

__all__ = [
    "__version__",
    "ApiError",
    "AsyncTresor",
    "Conflict",
    "Denied",
    "DeprecatedOperation",
    "InvalidRequest",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "RateLimited",
    "Result",
    "Retry",
    "TransportError",
    "Tresor",
    "TresorError",
    "Unauthorized",
    "Unavailable",
    *_models,
]
