"""The README and docs/: every relative link resolves, the README stays short, and its
test command is the one CI runs."""

import re
from pathlib import Path

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def _links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    broken = []
    for link in _links(doc):
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: not checked offline
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists():
            broken.append(link)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(link)
    assert not broken, f"{doc.name}: broken links {broken}"


def test_readme_is_short():
    size = len((REPO / "README.md").read_bytes())
    assert size < 12_000, f"README.md is {size} bytes; move detail into docs/ and link it"


def test_readme_holds_the_test_command_ci_runs():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index("# --- the README's test command, verbatim ---") + 1]
    assert command in (REPO / "README.md").read_text()


def test_ci_runs_the_slurm_test_after_the_readme_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    readme = ci.index("# --- the README's test command, verbatim ---") + 1
    slurm = [i for i, line in enumerate(ci) if line.startswith("python -m pytest -m slurm")]
    assert slurm and slurm[0] > readme
