"""The documentation's links resolve, and README.md stays a short front door to docs/.

Every Markdown link and image in README.md, docs/*.md and benchmarks/README.md that is not a web
address must name a file that exists, and its `#anchor` (if any) a heading of that file, by GitHub's
rules for heading ids.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 300

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
INLINE_CODE = re.compile(r"(`+).+?\1")
# [text](target) and ![alt](target), with an optional "title"; the text may hold one level of brackets
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\s*\)")
# [text]: target, a reference definition
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "README.md"]


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) for the lines outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not line.strip()[len(match.group(1)):].strip():
                fence = None
        else:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's id for a heading: its text without Markdown, lowercased, every character other than a
    letter, digit, space, hyphen or underscore dropped, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text, not its target
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading id of a Markdown file; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    ids = set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids.add(base if count == 0 else f"{base}-{count}")
    return ids


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link in the file's prose, inline code left out."""
    found = []
    for number, line in prose_lines(path):
        text = INLINE_CODE.sub("", line)
        found += [(number, target) for target in LINK.findall(text)]
        match = REFERENCE.match(text)
        if match:
            found.append((number, match.group(1)))
    return found


def is_external(target: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) is not None  # http:, https:, mailto:, ...


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        if not target or is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(ROOT)}:{number}: ({target})"
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{where}: no such file {linked}")
            continue
        if anchor:
            if linked.is_dir() or linked.suffix.lower() != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor).lower() not in anchors(linked):
                problems.append(f"{where}: no heading with the id {anchor!r} in {linked.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(path):
    assert path.exists(), f"{path} is missing"
    assert broken_links(path) == []


def test_readme_is_a_short_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, at most {README_MAX_LINES}: move the detail into docs/")


def test_readme_links_to_every_docs_page():
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ has no Markdown pages"
    linked = {(README.parent / target.partition("#")[0]).resolve()
              for _, target in links(README) if not is_external(target) and target.partition("#")[0]}
    missing = [str(page.relative_to(ROOT)) for page in pages if page.resolve() not in linked]
    assert missing == [], f"README.md does not link to {missing}"


def test_every_docs_page_starts_with_a_title_and_a_link_back():
    for page in sorted(DOCS.glob("*.md")):
        lines = [line for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert lines and re.match(r"^# \S", lines[0]), f"{page.name} does not start with a '# title' line"
        assert len(lines) > 1 and "(../README.md)" in lines[1], f"{page.name}'s second line does not link to README.md"


@pytest.mark.parametrize("heading, expected", [
    ("Stain: the parasite, not the colour", "stain-the-parasite-not-the-colour"),
    ("The `seed` network", "the-seed-network"),
    ("Several GPUs in one machine: `mirrored`", "several-gpus-in-one-machine-mirrored"),
    ("Sharing data and models: a DVC remote", "sharing-data-and-models-a-dvc-remote"),
    ("train@k and snake_case -- done", "traink-and-snake_case----done"),
])
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_repeated_headings_get_numbered_ids(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n```\n# not a heading\n```\n\n## Notes\n")
    assert anchors(page) == {"notes", "notes-1", "notes-2"}
