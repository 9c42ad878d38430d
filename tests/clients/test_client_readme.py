"""The README's five things run as written against a served Tresor, in order: the examples
integrators copy cannot drift from what the client and the server do."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tresor_client import Denied, LookupRequest

from tests.clients.conftest import CLIENT, Server

README = CLIENT / "README.md"
BLOCKS = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_the_five_things_in_the_readme_run_as_written(server: Server):
    """Each block runs; the batch sends the found subject and skips the unknown address,
    the rectification is not stale, and the withdrawal makes the lookup denied."""
    blocks = BLOCKS.findall(README.read_text())
    assert len(blocks) == 7  # the set-up, the five things and a contract basis
    sent: list[dict[str, Any] | None] = []
    skipped: list[tuple[int | None, str | None]] = []
    namespace: dict[str, Any] = {
        "CRM_KEY": server.writer,
        "SHOP_KEY": server.shop,
        "emails": ["erika@example.org", "nobody@example.org"],
        "send": sent.append,
        "skip": lambda i, reason: skipped.append((i, reason)),
    }
    for block in blocks:
        code = block.replace("https://tresor.internal", server.base)
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 (our own README)
    assert namespace["consent"].body.status == "granted"
    assert namespace["found"].body.fields == {"name": "Erika Muster"}
    assert sent == [{"name": "Erika Muster"}]
    assert [reason for _, reason in skipped] == ["subject_not_found"]
    assert "name" in namespace["patched"].body.changed  # the lookup's ETag was current
    crm, shop = namespace["crm"], namespace["shop"]
    with pytest.raises(Denied) as denied:
        shop.lookup(
            LookupRequest(
                purpose="offers.sms", subject_id=namespace["subject_id"], contact=namespace["sms"]
            )
        )
    assert denied.value.reason == "consent_withdrawn"
    crm.close()
    shop.close()
