"""The README's quickstart runs as pasted: every ```sh block of README.md, in order, in one
shell against a real `tresor serve` (temporary data dir, free port), from a folder that is
not the checkout. A newcomer gets from nothing to a confirmed double opt-in and a lookup
with exactly these commands, so the README cannot rot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import serve

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: A fenced block marked `sh` (runnable); `shell` blocks are left alone.
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _answers(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects the blocks printed, one per line (header lines of `curl -i` and
    the echoed subject id are not JSON)."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_the_quickstart_blocks_run_as_pasted(tmp_path: Path):
    """The blocks create the clients, a customer, a contract basis and a double opt-in
    consent, confirm it from the mailed link (which points at the served port), look the
    customer up for both purposes, record a contact and rectify the name, each answer a
    success."""
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing and os.environ.get("CI") != "true":
        pytest.skip(f"the README's blocks need {', '.join(missing)}")
    assert not missing, f"CI runs the README's blocks: install {', '.join(missing)}"
    blocks = SH_BLOCK.findall(README.read_text())
    assert len(blocks) >= 6, "the quickstart's blocks are ```sh blocks"
    work = tmp_path / "elsewhere"  # the shell's folder: .venv as in a checkout, no policies
    (work / ".venv").mkdir(parents=True)
    (work / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    with serve(tmp_path) as served:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
        env.update(TRESOR_DATA_DIR=str(served.data_dir), TRESOR_PORT=served.base.rsplit(":")[-1])
        done = subprocess.run(
            ["bash", "-e", "-u", "-o", "pipefail", "-c", "\n".join(blocks)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        (mail,) = served.mail_files()
        assert f"{served.base}/confirm/" in mail.read_text()  # TRESOR_PUBLIC_URL followed
    contract, pending, confirmed, newsletter, delivery, contact, patched = _answers(done.stdout)
    assert contract["basis"] == "contract" and pending["status"] == "pending_confirmation"
    assert confirmed["status"] == "granted" and confirmed["evidence"]["touchpoint"]
    assert newsletter["fields"]["email"] == "erika@example.org" and newsletter["contact"]
    assert set(delivery["fields"]) == {"name", "phone", "postal_address"}
    assert contact["contact"]["channel"] == "sms"
    assert patched["changed"] == ["name"]
    assert 'etag: "contact-r1"' in done.stdout.lower()
