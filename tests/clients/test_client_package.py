"""`tresor-client` builds as a wheel of its own that carries its modules and the type marker."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.clients.conftest import CLIENT


def test_the_wheel_carries_the_modules_and_py_typed(tmp_path: Path):
    """Built from a copy of clients/python alone (a build in the checkout would leave
    `build/` behind): every module of the package and py.typed are in it."""
    src = tmp_path / "src"
    shutil.copytree(
        CLIENT, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("tresor_client-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {
        f"tresor_client/{p.name}"
        for p in (CLIENT / "src" / "tresor_client").iterdir()
        if p.suffix == ".py" or p.name == "py.typed"
    }
    assert source and source <= names
