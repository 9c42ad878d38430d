"""The wheel carries what an installation needs: the migrations, the default policies, the
type marker, and one version; installed from the wheel alone, `tresor init` and
`tresor db upgrade` work without a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from api.app import VERSION
from vault.bundled import bundled
from vault.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the source tree: a build in the checkout would leave `build/`
    behind, whose stale modules a later build would ship."""
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(
        ROOT,
        src,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "*.egg-info",
            "__pycache__",
            "tresor-data",
            ".pytest_cache",
            ".hypothesis",
            ".import_linter_cache",
        ),
    )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(out)],
        check=True,
        cwd=src,
        capture_output=True,
        text=True,
    )
    assert _build_warnings(done.stderr) == [], done.stderr
    (built,) = out.glob("tresor-*.whl")
    return built


def _build_warnings(stderr: str) -> list[str]:
    """The warnings of setuptools (deprecations, packages left out, editable notes) in a
    build's output; pip's own notes about the machine's package index are not ours."""
    return [line for line in stderr.splitlines() if "Warning" in line or "!!" in line]


def test_an_editable_install_prints_no_warnings(tmp_path: Path):
    """`make install`'s step, `pip install -e .`, builds without a single setuptools
    warning (no deprecated licence table, no data directory taken for a package, no
    editable import hook), in a fresh virtual environment."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-deps", "-q", "-e", str(ROOT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert _build_warnings(done.stderr) == [], done.stderr


def _tracked(directory: str) -> set[str]:
    return {
        str(p.relative_to(ROOT / directory))
        for p in (ROOT / directory).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_wheel_carries_migrations_policies_and_the_type_marker(wheel: Path):
    """Every file of migrations/ and policies/ is in the wheel under vault/_bundled/, and
    so is py.typed."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for directory in ("migrations", "policies"):
        shipped = {
            n.removeprefix(f"vault/_bundled/{directory}/")
            for n in names
            if n.startswith(f"vault/_bundled/{directory}/")
        }
        assert shipped == _tracked(directory), directory
    assert "vault/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "migrations/", "policies/"))]


def test_the_wheel_has_every_module_of_vault_and_api(wheel: Path):
    """No package of the source tree (an area added later, say) is left out of the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        str(p.relative_to(ROOT))
        for top in ("vault", "api")
        for p in (ROOT / top).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules - names == set()


def test_the_wheel_carries_the_api_documents_assets(wheel: Path):
    """Swagger UI's and ReDoc's vendored files and licences are in the wheel, so an
    installed Tresor serves its API documents offline too."""
    names = set(zipfile.ZipFile(wheel).namelist())
    static = ROOT / "api" / "static"
    vendored = {str(p.relative_to(ROOT)) for p in static.glob("*/*") if p.is_file()}
    assert vendored and {n for n in vendored if n.endswith("LICENSE")}
    assert vendored <= names, sorted(vendored - names)


def test_one_version_string():
    """The API's version is pyproject.toml's, read from the installed metadata."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert VERSION == pyproject["project"]["version"]


def test_a_checkout_resolves_its_own_migrations_and_policies(tmp_path, monkeypatch):
    """From the repository, the top-level directories are used; with no ./policies in the
    working directory, TRESOR_POLICIES unset still finds the shipped defaults."""
    assert bundled("migrations") == ROOT / "migrations"
    assert bundled("policies") == ROOT / "policies"
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).policies_dir == ROOT / "policies"
    (tmp_path / "policies").mkdir()
    assert Settings.from_env({}).policies_dir == Path("policies")
    assert Settings.from_env({"TRESOR_POLICIES": "/x"}).policies_dir == Path("/x")


def test_tresor_init_and_db_upgrade_run_from_the_installed_wheel(wheel: Path, tmp_path: Path):
    """Unpacked away from the checkout, the wheel's code initialises a vault with its own
    migrations and default policies (no TRESOR_POLICIES, no ./policies)."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRESOR_", "PYTHON"))}
    env.update(PYTHONPATH=str(site), TRESOR_DATA_DIR=str(work / "data"))
    cli = "import sys, api.cli, vault; print(vault.__file__); sys.exit(api.cli.main())"
    for argv in (["init"], ["db", "upgrade"]):
        done = subprocess.run(
            [sys.executable, "-c", cli, *argv], cwd=work, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(str(site / "vault")), done.stdout
    assert (work / "data" / "keyring.json").exists()
