"""Open a Snakemake report in headless Chromium, click through to the figures, take screenshots.

    snakemake --report report.html
    python docs/report_screenshot.py report.html /tmp/report-shots

Needs Debian's `chromium` and `pip install websocket-client`. Drives the page
over the Chrome DevTools protocol: clicks "Results", then each category and
each figure entry, and saves a PNG after every click, so a person can check
that the figures and their captions show.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
]


class Page:
    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=30)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                return message.get("result", {})

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def click_text(self, text: str) -> bool:
        return bool(self.js(
            "(() => { const els = [...document.querySelectorAll('a, button, li, span, div, td')]"
            f".filter(e => e.children.length === 0 && e.textContent.trim() === {json.dumps(text)});"
            " if (!els.length) return false; els[0].click(); return true; })()"
        ))

    def shot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


def categories_in(page: Page) -> list[str]:
    """The experiment categories listed under Results (one per experiment in the report)."""
    labels = page.js(
        "[...document.querySelectorAll('*')].filter(e => e.childElementCount === 0).map(e => e.textContent.trim())"
    ) or []
    return [label for label in dict.fromkeys(labels) if label in ("mini", "transient", "paper", "paper_slice", "quick")]


def main(report: str, out_dir: str, max_files: int = 3) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen(
        ["chromium", *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=9333", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            try:
                targets = json.load(urllib.request.urlopen("http://127.0.0.1:9333/json"))
                break
            except OSError:
                time.sleep(0.2)
        page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call("Page.navigate", url=Path(report).resolve().as_uri())
        time.sleep(3)
        page.shot(out / "00_home.png")
        page.click_text("Results")
        time.sleep(1)
        page.shot(out / "01_results.png")
        shots = 2
        categories = categories_in(page)
        for category in categories:
            page.click_text(category)
            time.sleep(0.5)
            for subcategory in ("figures", "claims"):
                if not page.click_text(subcategory):
                    continue
                time.sleep(0.5)
                files = page.js(
                    "[...document.querySelectorAll('*')].filter(e => e.childElementCount === 0)"
                    ".map(e => e.textContent.trim())"
                    ".filter(t => t.startsWith('results/') && (t.endsWith('.png') || t.endsWith('.md')))"
                ) or []
                for name in files[:max_files]:
                    # the eye icon next to the file name shows the figure, the "i" icon its caption
                    for index, what in ((0, "figure"), (1, "caption")):
                        page.js(
                            "(() => { const label = [...document.querySelectorAll('*')].find(e => "
                            f"e.childElementCount === 0 && e.textContent.trim() === {json.dumps(name)}); "
                            "const icons = label.parentElement.querySelectorAll('svg'); "
                            f"const icon = icons[{index}]; if (!icon) return false; "
                            "(icon.closest('button, a') || icon).dispatchEvent(new MouseEvent('click', {bubbles: true})); "
                            "return true; })()"
                        )
                        time.sleep(1.5)
                        page.shot(out / f"{shots:02d}_{Path(name).stem}_{what}.png")
                        shots += 1
                page.click_text(category)  # breadcrumb back to the category
                time.sleep(0.5)
            page.click_text("Results")
            time.sleep(0.5)
    finally:
        proc.terminate()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
