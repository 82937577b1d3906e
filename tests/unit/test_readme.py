"""README is the front door: every page it points to exists (mkdocs --strict checks docs/)."""

from __future__ import annotations

import re

from helpers import ROOT


def test_every_relative_link_in_readme_resolves() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "README links to no page of its own"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == [], f"README links to missing files: {missing}"


def test_readme_stays_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 250, f"README is {lines} lines: move the detail into docs/"
