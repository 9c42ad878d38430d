"""The layering of vault/ (docs/architecture.md) is enforced, not just described.

`lint-imports` checks the import-linter contracts in pyproject.toml (`make test` runs it
before pytest; these tests run it too, so the suite fails on a violation). A copy of the
packages with one bad import added shows that each kind of violation does break a
contract. Three rules import-linter cannot see are checked on the syntax tree: no module
imports another area inside a function, `if TYPE_CHECKING:` (whose imports the
contracts leave out) names nothing but the composition root, and nothing outside
vault/crypto imports `hmac` or `cryptography` (one crypto surface, issue 14 item 11).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
VAULT_MODULES = sorted((ROOT / "vault").rglob("*.py"))


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the packages under `root`, with root's pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_are_kept():
    """lint-imports passes on the tree as it is: api over vault, the areas in their layers,
    no cycle between the modules of an area."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of vault/, api/ and pyproject.toml that a test may break."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "templates", "locale")
    for package in ("vault", "api"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


#: One added line (or module) per kind of violation, and the contract it breaks.
VIOLATIONS = {
    "vault imports api": (
        "vault/rights/export.py",
        "import api.problems\n",
        "api uses vault; vault never imports api BROKEN",
    ),
    "a lower area imports a higher one": (
        "vault/subjects/store.py",
        "from vault.outreach import basket\n",
        "vault.subjects is not allowed to import vault.outreach",
    ),
    "the catalogue imports the audit trail": (
        "vault/catalogue/purposes.py",
        "from vault.audit import events\n",
        "vault.catalogue is not allowed to import vault.audit",
    ),
    "the recipients' outbox imports the subjects above it": (
        "vault/recipients/events.py",
        "from vault.subjects import store\n",
        "vault.recipients is not allowed to import vault.subjects",
    ),
    "crypto imports storage": (
        "vault/crypto/fields.py",
        "from vault.storage import tables\n",
        "vault.crypto is not allowed to import vault.storage",
    ),
    "an area imports the composition root at run time": (
        "vault/bases/consents/recording.py",
        "from vault.context import VaultContext as _Root\n",
        "vault.bases is not allowed to import vault.context",
    ),
    "a cycle inside an area": (
        "vault/access/judge.py",
        "from vault.access import lookup\n",
        "No cycles are allowed in vault.access",
    ),
    "a function-local import of a higher area": (
        "vault/access/lookup.py",
        "\n\ndef _dodge() -> object:\n    from vault.outreach import basket\n\n    return basket\n",
        "vault.access is not allowed to import vault.outreach",
    ),
    "the subjects import the access pipeline above them": (
        "vault/subjects/store.py",
        "from vault.access import judge\n",
        "vault.subjects is not allowed to import vault.access",
    ),
}


@pytest.mark.parametrize("kind", sorted(VIOLATIONS))
def test_a_deliberate_violation_breaks_a_contract(tree_copy: Path, kind: str):
    """Adding one import that breaks the architecture (vault -> api, an upward import
    between areas, a cycle in an area, even one hidden in a function) fails lint-imports
    and names what broke."""
    path, line, expected = VIOLATIONS[kind]
    target = tree_copy / path
    text = target.read_text(encoding="utf-8")
    if line.startswith("\n"):
        text += line
    else:
        future = "from __future__ import annotations\n"
        assert future in text
        text = text.replace(future, future + line, 1)
    target.write_text(text, encoding="utf-8")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0, result.stdout
    assert expected in result.stdout, result.stdout


def test_a_new_top_level_module_must_be_placed_in_a_layer(tree_copy: Path):
    """The layers contract is exhaustive: a module added at the top of vault/ without a
    place in the layers fails lint-imports."""
    (tree_copy / "vault" / "helpers.py").write_text('"""Anything."""\n', encoding="utf-8")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0, result.stdout
    assert "vault.helpers" in result.stdout, result.stdout


def _area(module: str) -> str:
    """`vault.<area>` of a dotted module name (the kernel modules are their own area)."""
    return ".".join(module.split(".")[:2])


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The vault modules an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "vault"]
    base = node.module or ""
    if node.level:
        base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
    return [base] if base.split(".")[0] == "vault" else []


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_in(path: Path, inside: type | tuple[type, ...], only: object = None):
    """(line, module, imported vault module) for each import inside a node of type
    `inside` (for which `only(node)` holds, if given) in the module at `path`."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for outer in ast.walk(tree):
        if not isinstance(outer, inside) or (only is not None and not only(outer)):
            continue
        for node in ast.walk(outer):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _imported(node, package):
                    yield node.lineno, module, name


def test_no_function_imports_another_area():
    """A function that imports another area hides a dependency the layers forbid (the old
    way around the cycles): every import of another area stands at module level."""
    hidden = [
        f"{module} line {line}: {name}"
        for path in VAULT_MODULES
        for line, module, name in _imports_in(path, (ast.FunctionDef, ast.AsyncFunctionDef))
        if _area(name) != _area(module)
    ]
    assert VAULT_MODULES
    assert not hidden, hidden


def test_type_checking_imports_name_only_the_composition_root():
    """The contracts leave `if TYPE_CHECKING:` imports out so that the areas can name
    `VaultContext` as a type; anything else imported there would slip past the layers."""
    slipped = [
        f"{module} line {line}: {name}"
        for path in VAULT_MODULES
        for line, module, name in _imports_in(
            path, ast.If, only=lambda node: _is_type_checking(node.test)
        )
        if name != "vault.context"
    ]
    assert VAULT_MODULES
    assert not slipped, slipped


#: Modules outside vault/crypto may not import these: keyed MACs and signatures go through
#: `vault.crypto` (`Mac` under a derived key, `Signer` / `VerifyKey`).
CRYPTO_ONLY = ("hmac", "cryptography")
CHECKED_FOR_CRYPTO = sorted(
    p
    for package in ("vault", "api")
    for p in (ROOT / package).rglob("*.py")
    if not p.is_relative_to(ROOT / "vault" / "crypto")
)


def crypto_outside_vault_crypto(source: str) -> list[str]:
    """Each import of `hmac` or `cryptography` (any submodule, at any depth of the module)
    in `source`, and each call of `hmac.new` / `hmac.digest` however `hmac` was reached."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("new", "digest", "compare_digest")
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "hmac"
        ):
            names = ["hmac." + node.func.attr]
        found += [f"line {node.lineno}: {n}" for n in names if n.split(".")[0] in CRYPTO_ONLY]
    return found


def test_only_vault_crypto_uses_hmac_or_the_cryptography_library():
    """One crypto surface: no module of vault/ or api/ outside vault/crypto imports `hmac`
    or `cryptography` (hazmat included) or calls `hmac.new` / `hmac.digest`."""
    offending = {
        str(path.relative_to(ROOT)): hits
        for path in CHECKED_FOR_CRYPTO
        if (hits := crypto_outside_vault_crypto(path.read_text(encoding="utf-8")))
    }
    assert len(CHECKED_FOR_CRYPTO) > 100
    assert not offending, offending


@pytest.mark.parametrize(
    "source",
    [
        "import hmac\n",
        "import hashlib, hmac as h\n",
        "from hmac import compare_digest\n",
        "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey\n",
        "def f():\n    import cryptography.hazmat.primitives.hashes\n",
        "from cryptography import fernet\n",
        "x = hmac.new(k, m, 'sha256')\n",
        "x = hmac.digest(k, m, 'sha256')\n",
    ],
)
def test_the_crypto_rule_catches_each_way_round_it(source: str):
    """Each way of reaching `hmac` or `cryptography` outside vault/crypto (plain, aliased,
    from-import, a function-local import, a call through a name bound elsewhere) is
    reported."""
    assert crypto_outside_vault_crypto(source)


def test_the_crypto_rule_leaves_the_safe_surface_alone():
    """Importing `vault.crypto` and hashing without a key (`hashlib`) are allowed."""
    assert not crypto_outside_vault_crypto(
        "import hashlib\nfrom vault.crypto import Mac, KeyLabel\nfrom vault import crypto\n"
    )
