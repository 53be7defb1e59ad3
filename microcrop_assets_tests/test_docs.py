"""The README stays an onboarding page that leads into docs/, and no link between the pages is dead.

What the pages say about the definitions is checked in test_definitions.py; their commands are run in
test_readme_commands.py.
"""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 120
# how a command starts: such a line in a fence that is not ```bash would escape test_readme_commands.py
COMMAND_STARTS = (".venv/bin/", "./dev ", "export ", "docker ", "cp ", "python ", "DAGSTER_HOME=")


def links(page: Path) -> list[str]:
    """The page's Markdown link targets that are not web addresses."""
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()) if "://" not in target]


def anchors(page: Path) -> set[str]:
    """The anchors of the page's headings, as GitHub makes them."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def fences(page: Path) -> list[tuple[str, list[str]]]:
    """Each fenced block of the page (indented ones too): its language and its lines."""
    found = re.findall(r"^ *```(\w*)\n(.*?)^ *```", page.read_text(), flags=re.S | re.M)
    return [(language, [line.strip() for line in body.splitlines()]) for language, body in found]


def test_the_readme_is_short_and_links_every_docs_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines, at most {MAX_README_LINES}"
    linked = {target.split("#")[0] for target in links(README) if target.startswith("docs/")}
    every = {f"docs/{page.name}" for page in PAGES[1:]}
    assert sorted(linked) == sorted(every)  # every page linked, and no link to a page that is not there
    assert {"docs/configuration.md", "docs/pipeline.md", "docs/operations.md", "docs/security.md"} <= every


def test_the_readme_opens_with_the_two_commands():
    language, lines = fences(README)[0]
    assert language == "bash"
    assert [line.split("#")[0].strip() for line in lines] == ["./dev demo", "./dev test"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_link_reaches_a_page_and_a_heading(page):
    dead = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.is_file() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            dead.append(target)
    assert dead == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_command_is_in_a_bash_block(page):
    """test_readme_commands.py runs the ```bash blocks: a command in any other fence would go untested."""
    hidden = [
        line
        for language, lines in fences(page)
        if language != "bash"
        for line in lines
        if line.startswith(COMMAND_STARTS)
    ]
    assert hidden == []
