"""DNS rebinding is closed: a webhook's host name is resolved once per connection, every
answer is checked, and the TCP connection goes to the checked address (with the name kept
for the Host header), over one kept-alive connection per recipient."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, post

from tests.support.receiver import serving
from vault.recipients.signing import new_key
from vault.recipients.transports import WebhookTransport


class Rebinding:
    """A resolver that answers each name from a script: one answer list per lookup."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Recorder:
    """A network that records where connections would go and refuses them all."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def __call__(self, factory: Any, address: str, port: int, *a: Any) -> Any:
        self.connected.append(address)
        raise ConnectionRefusedError("refused")


async def _send(transport: WebhookTransport, url: str) -> str | None:
    return await transport.send(url, "msg_1", b"{}", [new_key()], 0, recipient="r1")


async def test_the_connection_goes_to_the_address_that_was_checked():
    """The resolver answers a public address first and a private one for any later lookup
    (DNS rebinding): the connection goes to the public address the check saw, and no second
    lookup happens between check and connect."""
    resolver = Rebinding(["93.184.216.34"], ["10.0.0.7"])
    network = Recorder()
    transport = WebhookTransport(allow_private=False, resolver=resolver, opener=network)
    try:
        assert await _send(transport, "https://hooks.example.com/tresor") == "connect_error"
    finally:
        await transport.close()
    assert resolver.lookups == ["hooks.example.com"]
    assert network.connected == ["93.184.216.34"]


async def test_a_name_resolving_inside_is_refused_without_connecting():
    """A private answer, alone or beside a public one, refuses the notice (`private_address`)
    and no connection is attempted; with private ranges allowed it connects."""
    for answers in (["10.0.0.7"], ["93.184.216.34", "169.254.169.254"]):
        network = Recorder()
        transport = WebhookTransport(
            allow_private=False, resolver=Rebinding(answers), opener=network
        )
        try:
            assert await _send(transport, "https://inside.example.com/x") == "private_address"
        finally:
            await transport.close()
        assert network.connected == []
    network = Recorder()
    allowed = WebhookTransport(allow_private=True, resolver=Rebinding(["10.0.0.7"]), opener=network)
    try:
        assert await _send(allowed, "https://inside.example.com/x") == "connect_error"
    finally:
        await allowed.close()
    assert network.connected == ["10.0.0.7"]


async def test_a_named_receiver_is_reached_at_its_checked_address_over_one_connection():
    """A real receiver on loopback named `receiver.test`: both notices arrive with the name
    in the Host header, through one resolved and kept-alive connection."""
    hosts: list[str] = []

    @post("/hook", status_code=204)
    async def hook(request: Request[Any, Any, Any]) -> None:
        hosts.append(request.headers["host"])

    resolver = Rebinding(["127.0.0.1"], ["10.0.0.7"])
    async with serving(Litestar([hook], openapi_config=None)) as base:
        port = base.rsplit(":", 1)[1]
        transport = WebhookTransport(allow_private=False, resolver=resolver)
        try:
            url = f"http://receiver.test:{port}/hook"
            assert await _send(transport, url) is None
            assert await _send(transport, url) is None
        finally:
            await transport.close()
    assert hosts == [f"receiver.test:{port}"] * 2
    assert resolver.lookups == ["receiver.test"]
