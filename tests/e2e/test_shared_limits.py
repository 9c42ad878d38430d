"""`tresor serve --workers 2`: the failed-authentication brake is one count for both
worker processes (the shared database counter), and a valid key is served throughout."""

from __future__ import annotations

from tests.support.server import serve

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def test_two_workers_share_the_failed_auth_brake_and_serve_a_valid_key(tmp_path):
    """With a limit of 6, twenty wrong keys over fresh connections (spread over both
    workers by the kernel) get exactly six 401s, then 429s; a valid key is served."""
    with serve(tmp_path, workers=2, TRESOR_FAILED_AUTH_LIMIT="6") as served:
        writer = served.client("crm", "writer")
        codes = [served.call("GET", "/v1/clients", "tresor_wrong")[0] for _ in range(20)]
        assert codes == [401] * 6 + [429] * 14
        for _ in range(5):
            status, _ = served.call("GET", f"/v1/subjects/{UNKNOWN}/consents", writer)
            assert status == 404
        assert served.call("GET", "/v1/clients")[0] == 401
