"""`tresor-client` builds as a wheel of its own that carries its modules and the type marker."""

from __future__ import annotations

import ast
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


def test_the_client_imports_neither_the_server_nor_the_vault():
    """tresor_client talks HTTP only: no module of it imports `vault` or `api`."""
    imported: set[str] = set()
    for path in (CLIENT / "src" / "tresor_client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    assert "tresor_client" in imported and "httpx" in imported
    assert imported & {"vault", "api", "tests"} == set()
