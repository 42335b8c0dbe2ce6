"""The README and docs/ keep their promises: every relative link leads somewhere, and the README stays short.

A moved file or a renamed heading breaks a link silently; these tests make the suite notice. Links are
checked as GitHub renders them: a relative path from the linking file, and an anchor made from a
heading by GitHub's rule (lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats).
External links (http:, https:, mailto:) are not fetched: the suite stays off the network.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = sorted([README, *(REPO / "docs").glob("*.md")])

# The README is the front door (issue 16): what dnslab is, the two commands, one picture, the commands
# table and links. The rest lives in docs/.
README_MAX_LINES = 260

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(path: Path) -> list[str]:
    """The lines outside fenced code blocks, where a link is a link."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        lines.append("" if fenced else line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in _prose(path):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(_prose(path), 1):
        # Inline code is not a link: `[x](y)` inside backticks stays text.
        line = re.sub(r"`[^`]*`", "", line)
        found += [(number, m.group(1)) for m in _LINK.finditer(line)]
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto: ... not fetched
        file_part, _, anchor = target.partition("#")
        where = (path.parent / file_part).resolve() if file_part else path
        name = f"{path.relative_to(REPO)}:{number}: {target}"
        if not where.exists():
            problems.append(f"{name}: no such file {where.relative_to(REPO) if REPO in where.parents else where}")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            problems.append(f"{name}: no heading with the anchor #{anchor} in {where.relative_to(REPO)}")
        elif anchor and where.suffix != ".md":
            problems.append(f"{name}: an anchor into a file that is not Markdown")
    return problems


def test_slug_follows_github() -> None:
    assert slug("Trace events (`dnslab trace --json`)") == "trace-events-dnslab-trace---json"
    assert slug("Tests of your own: the pytest plugin") == "tests-of-your-own-the-pytest-plugin"
    assert slug("The web view's HTTP API") == "the-web-views-http-api"
    assert slug("lab.toml") == "labtoml"


def test_the_checker_finds_a_broken_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that cannot fail proves nothing: a missing file and a missing anchor are both reported."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#a-section) [self](#page) [gone](missing.md) "
                    "[no anchor](other.md#nowhere)\n\n```\n[in code](not-checked.md)\n```\n"
                    "`[inline](not-checked.md)` [web](https://example.com/x)\n")
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "missing.md" in problems[0] and "#nowhere" in problems[1]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_docs_are_reachable_from_the_readme() -> None:
    """Every page in docs/ is linked from the README, so nothing moved there is lost to a reader."""
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    unlinked = [p.name for p in DOCS if p != README and p.resolve() not in linked]
    assert unlinked == []


def test_readme_stays_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_the_quick_start_commands_are_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    assert "./scripts/up" in text and "./scripts/test" in text
    assert (REPO / "scripts" / "up").exists() and (REPO / "scripts" / "test").exists()
