"""One served Tresor (SQLite, `tests/support/server.py`) for the client's tests, with the
API keys an integrator has: a writer (the CRM) and a lookup client (the shop)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.server import Served, serve

#: The purposes the shop may look up: a consent without double opt-in, and a contract.
SHOP_PURPOSES = ("offers.sms", "order.delivery")


@dataclass(frozen=True)
class Server:
    served: Served
    writer: str
    shop: str

    @property
    def base(self) -> str:
        return self.served.base


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("client")) as served:
        yield Server(
            served,
            writer=served.client("crm", "writer"),
            shop=served.client("shop", "lookup", *SHOP_PURPOSES),
        )
