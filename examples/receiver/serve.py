"""`uvicorn --factory examples.receiver.serve:app`: the receiver configured from the
environment (RECEIVER_SECRETS: space-separated whsec_ secrets; RECEIVER_API_KEY)."""

from __future__ import annotations

import os

from litestar import Litestar

from examples.receiver.app import ReceiverState, create_receiver, decode_secret


def app() -> Litestar:
    keys = [decode_secret(s) for s in os.environ["RECEIVER_SECRETS"].split()]
    return create_receiver(ReceiverState(keys=keys), api_key=os.environ.get("RECEIVER_API_KEY"))
