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


def test_ci_stops_when_a_step_of_the_readme_command_fails():
    """Under `set -e` a step failing inside an && list does not stop a script; .ci/run's lines after
    the README's command must. Run them after a stand-in list whose middle step fails."""
    import subprocess

    ci = (REPO / ".ci" / "run").read_text().splitlines()
    after = ci.index("# --- the README's test command, verbatim ---") + 2
    guard = ci[after : after + 2]
    assert guard[0].startswith("status=$?"), guard
    for lines, stops in ((guard, True), ([], False)):  # without the guard the script runs on
        script = "\n".join(["set -euo pipefail", "true && false && true", *lines, "echo the next step ran"])
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
        assert (result.returncode != 0 and "next step" not in result.stdout) == stops, (lines, result)
