"""Packaging beyond what pyproject.toml can say: the top-level `migrations/` and `policies/`
of the repository (where they stay) travel in the wheel as `vault/_bundled/`, so an installed
wheel can run `tresor init` and serve with the default policies. pyproject.toml can map a
directory to a package only with an explicit package list, and the areas of `vault/` and
`api/` are found instead, so new ones need no entry here. `vault.settings.bundled` finds
either copy.
"""

from setuptools import find_packages, setup

BUNDLED = {
    "vault._bundled.migrations": "migrations",
    "vault._bundled.migrations.versions": "migrations/versions",
    "vault._bundled.policies": "policies",
}

setup(packages=find_packages(include=["vault*", "api*"]) + list(BUNDLED), package_dir=BUNDLED)
