"""The shipped policy files point only to documents of the repository that exist, down to
the section: a reader following a comment never lands on nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: A Markdown document named in a comment, with an optional #section.
REFERENCE = re.compile(r"([\w./-]+\.md)(?:#([\w-]+))?")


def _anchors(document: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, spaces to hyphens,
    punctuation dropped)."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", document.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.parametrize("policy", sorted((ROOT / "policies").glob("*.toml")), ids=lambda p: p.name)
def test_every_document_a_policy_file_names_exists(policy: Path):
    """Each `*.md` (and `#section`) named in a policy file's comments is a file of the
    repository with that heading."""
    for line in policy.read_text().splitlines():
        if not line.lstrip().startswith("#"):
            continue
        for name, section in REFERENCE.findall(line):
            document = ROOT / name
            assert document.is_file(), f"{policy.name} names {name}, which does not exist"
            if section:
                assert section in _anchors(document), f"{policy.name}: no section {section}"
