"""The HTML report as a reader sees it: the tiny experiment built, `snakemake --report`, headless Chromium.

    python -m pytest -m browser tests/test_report.py --basetemp=/tmp/report-test   # ~3 min on 2 cores

Marked ``browser`` (the default run leaves it out; .ci/run runs it). Needs Debian's
``chromium`` (``apt-get install chromium``; .ci/run installs it). The check itself is
tests/report_browser.py: it clicks Results → tiny → figures, opens each figure's
details and its image, then the claims page, and lists what is missing. Screenshots of
the figures table, the claims page and the pages of fig1 and fig3 are left under
``<basetemp>/report0/screenshots/`` for a person to look at.
"""

import json
import re
import subprocess

import pytest
import yaml

from conftest import REPO, TINY_BLOCK
from report_browser import check_report, find_chromium, remove_from_report
from test_workflow import SNAKEMAKE
from transient_ridge.figures import FIGURE_NAMES
from transient_ridge.provenance import read_provenance

pytestmark = pytest.mark.browser

EXPERIMENT = "tiny"
SHOOT = ("fig1", "fig3")
CAPTIONS = REPO / "workflow" / "report"


def caption_heading(name: str) -> str:
    """The first words of a figure's caption: its bold heading (``**…**`` in workflow/report/<name>.rst),
    else the first four words of its first line."""
    text = (CAPTIONS / f"{name}.rst").read_text(encoding="utf-8")
    match = re.search(r"\*\*(.+?)\*\*", text, flags=re.DOTALL)
    if match:
        return " ".join(match.group(1).split())
    return " ".join(text.strip().splitlines()[0].replace("*", "").replace("`", "").split()[:4])


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed: apt-get install chromium (Debian); .ci/run installs it")
    return binary


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny experiment, every target built, and its report; (work dir, report.html)."""
    root = tmp_path_factory.mktemp("report")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({"experiments": {EXPERIMENT: TINY_BLOCK}}))
    common = ["--configfile", str(config), "--snakefile", str(REPO / "Snakefile"), "--directory", str(root / "work")]
    build = subprocess.run([SNAKEMAKE, "-c", "2", EXPERIMENT, *common], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-3000:]
    report = root / "report.html"
    made = subprocess.run(
        [SNAKEMAKE, EXPERIMENT, *common, "--report", str(report)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert made.returncode == 0 and report.is_file(), made.stderr[-3000:]
    return root, report


def expected_pages(work):
    """Figure name → what its page must show: the caption's heading, the provenance command and stamp."""
    results = work / "results" / EXPERIMENT
    pages = {}
    for name in FIGURE_NAMES:
        png = results / "figures" / f"{name}.png"
        stamp = read_provenance(png)
        pages[name] = (
            caption_heading(name),
            f"python -m transient_ridge.provenance results/{EXPERIMENT}/figures/{name}.png",
            stamp["git_commit"][:12],
            stamp["created_utc"],
        )
    return pages


def claims_verdict(work) -> str:
    """The verdict line the claims page must show: claims.json's own count of each verdict."""
    checked = json.loads((work / "results" / EXPERIMENT / "claims.json").read_text())
    counts = checked["counts"]
    assert sum(counts.values()) == len(checked["claims"]), counts
    return (f"{counts['holds']} hold, {counts['does not hold']} do not hold, {counts['not testable']} not testable "
            f"(of {len(checked['claims'])} claims).")


def claims_columns(work) -> dict[str, str]:
    """The claims row's other columns, from claims.json: the claims that do not hold, and those not testable."""
    checked = json.loads((work / "results" / EXPERIMENT / "claims.json").read_text())

    def named(verdict: str) -> str:
        return ", ".join(c["name"] for c in checked["claims"] if c["verdict"] == verdict) or "none"

    return {"do not hold": named("does not hold"), "not testable": named("not testable")}


def test_the_report_shows_every_figure_with_its_caption_and_provenance_and_the_claims(built, chromium):
    root, report = built
    work = root / "work"
    shots = root / "screenshots"
    problems = check_report(
        report,
        EXPERIMENT,
        figures=expected_pages(work),
        claims_verdict=claims_verdict(work),
        claims_columns=claims_columns(work),
        claims_md=(work / "results" / EXPERIMENT / "claims.md").read_text(encoding="utf-8"),
        screenshots=shots,
        shoot=SHOOT,
        chromium=chromium,
    )
    assert problems == []
    taken = sorted(p.name for p in shots.glob("*.png"))
    assert taken == sorted(f"{EXPERIMENT}_{page}.png" for page in ("figures_table", "claims", "claims_details", *SHOOT))
    print(f"screenshots: {shots}")


def test_the_check_fails_when_an_image_or_a_caption_is_gone(built, chromium):
    """The same report with fig3's PNG bytes and figB_id_loss's caption removed: both are named."""
    root, report = built
    doctored = root / "doctored.html"
    html = report.read_text(encoding="utf-8")
    html = remove_from_report(html, f"results/{EXPERIMENT}/figures/fig3.png", image=True)
    html = remove_from_report(html, f"results/{EXPERIMENT}/figures/figB_id_loss.png", caption=True)
    doctored.write_text(html, encoding="utf-8")
    wrong_columns = {**claims_columns(root / "work"), "not testable": "no such claim"}
    problems = check_report(
        doctored, EXPERIMENT, figures=expected_pages(root / "work"), claims_columns=wrong_columns, chromium=chromium
    )
    assert "fig3: the image did not load (naturalWidth 0)" in problems
    assert any(p.startswith("figB_id_loss: no caption") for p in problems)
    assert any(p.startswith("claims page: column 'not testable' reads") for p in problems), problems
    assert all(p.startswith(("fig3:", "figB_id_loss:", "claims page: column 'not testable'")) for p in problems), problems
