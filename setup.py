"""Packaging beyond what pyproject.toml can say: the top-level `migrations/` and `policies/`
of the repository (where they stay) travel in the wheel as `vault/_bundled/`, so an installed
wheel can run `tresor init` and serve with the default policies. `build_py` copies them into
the build; they are not mapped as packages (`package_dir`), because a mapped directory makes
an editable install use an import hook and print a warning on every `make install`, whereas
a plain layout is one `.pth` line. An editable install needs no copy: `vault.bundled.bundled`
falls back to the checkout's directories. The packages are found as namespace packages too,
so the data directories of `api/` (templates, static, locale) are not reported as importable
packages left out of the build.
"""

import shutil
from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

BUNDLED = ("migrations", "policies")


class BuildWithBundled(build_py):
    """The ordinary build, plus `migrations/` and `policies/` under `vault/_bundled/`."""

    def run(self) -> None:
        super().run()
        for name in BUNDLED:
            target = Path(self.build_lib, "vault", "_bundled", name)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(
    packages=find_namespace_packages(include=["vault*", "api*"], exclude=["*__pycache__*"]),
    package_dir={"": "."},
    cmdclass={"build_py": BuildWithBundled},
)
