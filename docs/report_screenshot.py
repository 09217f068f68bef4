"""Open a Snakemake report in headless Chromium, check what a reader sees, take screenshots.

    snakemake --report report.html
    python docs/report_screenshot.py report.html /tmp/report-shots

Needs Debian's ``chromium`` (``apt-get install chromium``) and nothing from PyPI.
For each experiment in the report it clicks Results → experiment → figures, opens
every figure's page (provenance columns, caption, the image itself) and the claims
page, saves a PNG of each under the output folder, and prints what a reader would
find missing: an image that did not load, a page without its caption, a claims page
without its verdict table. Exit status 1 when something is. The same check, with
the expected captions and provenance of the tiny test experiment, is
tests/test_report.py (``python -m pytest -m browser``); the browser driver is
tests/report_browser.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from report_browser import check_report, experiments_in  # noqa: E402


def main(report: str, out_dir: str) -> int:
    path, out = Path(report), Path(out_dir)
    problems = []
    for experiment in experiments_in(path.read_text(encoding="utf-8")):
        found = check_report(path, experiment, screenshots=out, shoot=("*",))
        problems += [f"{experiment}: {problem}" for problem in found]
    print(f"screenshots in {out}")
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python docs/report_screenshot.py REPORT.html OUT_DIR")
    sys.exit(main(sys.argv[1], sys.argv[2]))
