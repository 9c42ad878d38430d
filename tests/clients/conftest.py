"""One served Tresor (SQLite, `tests/support/server.py`) for the client's tests, with the
API keys an integrator has: a writer (the CRM) and a lookup client (the shop)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import Served, serve

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"

# `make install` installs the client (-e clients/python); a venv set up with only
# `pip install -e '.[test]'` finds it in the checkout (its dependencies, httpx and
# msgspec, are the server's too). tests/clients/test_client_package.py builds the wheel.
if importlib.util.find_spec("tresor_client") is None:
    sys.path.insert(0, str(CLIENT / "src"))

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
