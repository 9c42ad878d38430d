"""Data-subject requests (GDPR Art. 12-22): the workflow against the legal deadlines.

The public API callers import from here, by concern: the kinds of request (`kinds`), the
workflow's rule (`transitions`), the checks on input (`validation`), the rows, history and
audit of a request (`store`), carrying one out (`execution`), the DPO's operations
(`workflow`), the deadline's extension and its notice (`extension`), closing once the
recipients confirmed (`settlement`) and reading requests (`queue`). The names exported
here are the API; the helpers the modules share (e.g. `store.load_request`) are the
package's own.
"""

from vault.rights.free_text import MAX_TEXT
from vault.rights.requests.extension import extend, extension_mail
from vault.rights.requests.kinds import TYPE_TITLES, RequestChannel, RequestType
from vault.rights.requests.queue import get_request, list_requests, read_request, request_queue
from vault.rights.requests.settlement import settle, settle_awaiting
from vault.rights.requests.store import RequestRecord
from vault.rights.requests.transitions import (
    CLOSED,
    OPEN,
    TRANSITIONS,
    RequestAction,
    RequestStatus,
    initial_status,
    transition,
    transition_table_markdown,
)
from vault.rights.requests.validation import MAX_PAYLOAD_BYTES
from vault.rights.requests.workflow import approve, complete, create_request, reject, verify

__all__ = [
    "CLOSED",
    "MAX_PAYLOAD_BYTES",
    "MAX_TEXT",
    "OPEN",
    "TRANSITIONS",
    "TYPE_TITLES",
    "RequestAction",
    "RequestChannel",
    "RequestRecord",
    "RequestStatus",
    "RequestType",
    "approve",
    "complete",
    "create_request",
    "extend",
    "extension_mail",
    "get_request",
    "initial_status",
    "list_requests",
    "read_request",
    "reject",
    "request_queue",
    "settle",
    "settle_awaiting",
    "transition",
    "transition_table_markdown",
    "verify",
]
