"""Every relative link in README.md and docs/*.md opens: the target file exists, and a `#anchor` names a heading.

The README is the front door and the docs are moved around as the project grows; a link that silently stops
resolving sends a platform engineer or finance reader nowhere. Fast and offline: only the files are read.
Links that leave the repository (DESIGN.md lives beside it, in ../shared/) cannot be checked from a clean
clone and are left out; absolute URLs are not fetched.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(path: Path) -> str:
    """The page without fenced code blocks (code may contain `](...)` that is not a link)."""
    kept, in_code = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        if not in_code:
            kept.append(line)
    return "\n".join(kept)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[`*]|\[|\]\([^)]*\)", "", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    for line in _prose(path).splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            anchors.add(_slug(match.group(1)))
    return anchors


def _links() -> list[tuple[Path, str]]:
    return [(page, target) for page in _pages() for target in LINK.findall(_prose(page))]


def test_there_are_pages_and_links() -> None:
    assert (ROOT / "docs" / "README.md").exists()
    assert len(_links()) > 50


@pytest.mark.parametrize("page,target", _links(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_link_resolves(page: Path, target: str) -> None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        return
    file_part, _, anchor = target.partition("#")
    dest = (page.parent / file_part).resolve() if file_part else page
    if not dest.is_relative_to(ROOT):
        return
    assert dest.exists(), f"{page.relative_to(ROOT)}: link {target!r} points at a missing file"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), f"{page.relative_to(ROOT)}: no heading for #{anchor} in {dest.name}"


def test_slug_matches_github() -> None:
    assert _slug("5. Migrate the warehouse, once per release") == "5-migrate-the-warehouse-once-per-release"
    assert _slug("The `airflow_api` connection (payout pauses)") == "the-airflow_api-connection-payout-pauses"
