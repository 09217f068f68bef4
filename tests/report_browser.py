"""A Snakemake HTML report checked as a reader sees it: opened in headless Chromium.

Chromium (Debian's ``chromium``) is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: messages are JSON terminated by a NUL byte, on the
browser's file descriptors 3 and 4), so nothing but the standard library and the
browser is needed, and no port is opened.

:func:`check_report` clicks through the report as a person would (Results, the
experiment, "figures", each figure's details and its eye icon, then "claims") and
returns what it found wrong, one line per problem:

- the figures table lists other figures than expected;
- a figure's image is missing, did not load (``naturalWidth`` 0) or is not shown;
- a figure's page lacks its caption, shows it with raw markup, or lacks a text it
  must show (provenance);
- the claims page lacks the verdict table, shows another verdict, or its download
  differs from claims.md.

Used by tests/test_report.py and by hand through docs/report_screenshot.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_FLAGS", "Chromium", "Page", "check_report", "experiments_in", "find_chromium", "remove_from_report"]

# Headless, as root (no sandbox), and quiet on a closed network: without the
# background-networking flags Chromium keeps trying to reach Google's servers.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)  # fmt: skip
WINDOW = (1400, 1000)  # CSS pixels: a laptop browser window


def find_chromium() -> str | None:
    """Path of the Chromium binary (``$CHROMIUM``, ``chromium``, ``chromium-browser``), or None."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "/usr/bin/chromium"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


class Chromium:
    """One headless Chromium with a fresh profile, spoken to over the DevTools pipe."""

    def __init__(self, binary: str | None = None, timeout: float = 30.0) -> None:
        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("chromium not found; install it with: apt-get install chromium (Debian)")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="report-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser reads commands on fd 3 and writes replies on fd 4; bash moves the pipes there
        command = [
            "bash", "-c", 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null', binary, *CHROMIUM_FLAGS,
            f"--user-data-dir={self._profile}", "--remote-debugging-pipe", "about:blank",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=to_browser_r, stdout=from_browser_w, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are dropped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"chromium: {method} failed: {reply['error']}")
                return reply.get("result", {})

    def _receive(self, deadline: float, method: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer {method} within {self.timeout:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited (status {self.process.poll()}) while answering {method}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def new_page(self, width: int = WINDOW[0], height: int = WINDOW[1]) -> Page:
        """A new tab of the given size in CSS pixels."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session)
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        return page

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab: navigate, evaluate JavaScript, wait for a condition, click, take screenshots."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, self.session, **params)

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression (JSON-serialisable)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails'].get('exception', result['exceptionDetails'])}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll ``expression`` until it is truthy; its value, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value or time.monotonic() > deadline:
                return value or None
            time.sleep(0.1)

    def open(self, path: Path) -> bool:
        """Load a local HTML file and wait until the report's app has drawn its menu."""
        self.call("Page.navigate", url=path.resolve().as_uri())
        return bool(self.wait_for("document.readyState === 'complete' && !!document.querySelector('#app nav li')", 60))

    def click_text(self, text: str) -> bool:
        """Click the first link or list entry whose own text is ``text``; False if there is none."""
        return bool(self.js(
            "(() => { const els = [...document.querySelectorAll('a, button, li, span')]"
            f".filter(e => e.children.length === 0 && e.textContent.trim() === {json.dumps(text)});"
            " if (!els.length) return false; els[0].click(); return true; })()"
        ))  # fmt: skip

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path


# ---- the report's pages ----------------------------------------------------------------

_TABLE = """(() => {
  const table = document.querySelector('nav table');
  if (!table) return null;
  const head = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
  const rows = [...table.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(td => td.textContent.trim()));
  return {head, rows};
})()"""


def _click_row_icon(page: Page, first_cell: str, icon: str) -> bool:
    return bool(page.js(
        "(() => { const row = [...document.querySelectorAll('nav table tbody tr')]"
        f".find(r => r.cells[0] && r.cells[0].textContent.trim() === {json.dumps(first_cell)});"
        f" const a = row && row.querySelector('a[iconname={icon}]'); if (!a) return false; a.click(); return true; }})()"
    ))  # fmt: skip


def _go(page: Page, *labels: str) -> bool:
    """Follow a path of menu entries from the start page (the home icon, then each label)."""
    page.js("(() => { const home = document.querySelector('nav ol li a'); if (home) home.click(); })()")
    for label in labels:
        if not page.wait_for(f"[...document.querySelectorAll('a, li, span')].some(e => e.children.length === 0 && e.textContent.trim() === {json.dumps(label)})", 5):
            return False
        page.click_text(label)
    return True


def _image_state(page: Page, filename: str) -> dict[str, Any] | None:
    """The shown <img> whose data URI names ``filename``: complete, naturalWidth and rendered width."""
    return page.js(
        "(() => { const img = [...document.querySelectorAll('img')]"
        f".find(i => i.src.includes('filename=' + {json.dumps(filename)} + ';'));"
        " if (!img) return null; const box = img.getBoundingClientRect();"
        " return {complete: img.complete, natural: img.naturalWidth, width: box.width, height: box.height}; })()"
    )  # fmt: skip


def _details_text(page: Page) -> tuple[str, str]:
    """(whole menu text, caption text) of a result's details view."""
    return tuple(page.js(  # type: ignore[return-value]
        "(() => { const items = [...document.querySelectorAll('nav li')];"
        " const head = items.findIndex(li => li.textContent.trim().toLowerCase() === 'description');"
        " const caption = head >= 0 && items[head + 1] ? items[head + 1].innerText.trim() : '';"
        " const nav = document.querySelector('nav'); return [nav ? nav.innerText : '', caption]; })()"
    ))  # fmt: skip


def check_report(
    report: Path,
    experiment: str,
    *,
    figures: Mapping[str, Sequence[str]] | None = None,
    claims_verdict: str | None = None,
    claims_columns: Mapping[str, str] | None = None,
    claims_md: str | None = None,
    screenshots: Path | None = None,
    shoot: Sequence[str] = ("fig1",),
    chromium: str | None = None,
) -> list[str]:
    """Open ``report`` in headless Chromium and list what a reader would find missing or wrong.

    Args:
        report: the HTML file ``snakemake --report`` wrote.
        experiment: the category to look at (``tiny``, ``mini``, …).
        figures: figure name → texts its details page must show (caption words,
            provenance values); the figures table must list exactly these names.
            None: every listed figure, each needing only an image and a caption.
        claims_verdict: the verdict the claims table must show (None: any line that counts ``k hold, j do not hold, l not testable``).
        claims_columns: further columns of the claims row and the text each must show (``do not hold``,
            ``not testable``); None: not compared.
        claims_md: the text the claims download must hold (None: not compared).
        screenshots: a folder for PNGs of the figures table, the claims page and the
            figure pages named in ``shoot`` (``"*"``: every figure).
        chromium: the browser binary (default :func:`find_chromium`).

    Returns:
        One line per problem; an empty list when the report shows everything.
    """
    problems: list[str] = []

    def shot(name: str) -> None:
        if screenshots is not None:
            page.screenshot(screenshots / f"{name}.png")

    with Chromium(chromium) as browser:
        page = browser.new_page()
        if not page.open(report):
            return [f"{report}: the report's page did not load within 60 s"]

        # the figures table: one row per figure, its provenance in the columns
        if not _go(page, "Results", experiment, "figures"):
            return [f"no Results → {experiment} → figures in the report's menu"]
        table = page.wait_for(_TABLE, 5)
        listed = [row[0] for row in table["rows"]] if table else []
        shot(f"{experiment}_figures_table")
        wanted = list(figures) if figures is not None else listed
        if figures is not None and sorted(listed) != sorted(figures):
            problems.append(f"figures table lists {sorted(listed)}, expected {sorted(figures)}")
        for name in wanted:
            if name not in listed:
                continue  # reported above
            _go(page, "Results", experiment, "figures")
            page.wait_for(_TABLE, 5)
            if not _click_row_icon(page, name, "information-circle"):
                problems.append(f"{name}: no details icon in its row")
                continue
            # the details view: provenance columns and the caption; its eye icon shows the figure
            page.wait_for("[...document.querySelectorAll('nav li')].some(li => li.textContent.trim().toLowerCase() === 'description')", 5)
            text, caption = _details_text(page)
            if len(caption.split()) < 5:
                problems.append(f"{name}: no caption on its page (got {caption!r})")
            elif "``" in caption or "**" in caption:
                problems.append(f"{name}: its caption shows raw reStructuredText markup: {caption[:120]!r}")
            for needed in (figures or {}).get(name, ()):
                if needed not in text:
                    problems.append(f"{name}: its page does not show {needed!r}")
            page.js("(() => { const a = document.querySelector('nav table a[iconname=eye]'); if (a) a.click(); })()")
            filename = f"{name}.png"
            page.wait_for(
                "(() => { const img = [...document.querySelectorAll('img')]"
                f".find(i => i.src.includes('filename=' + {json.dumps(filename)} + ';'));"
                " return img && img.complete ? true : null; })()",
                10,
            )
            state = _image_state(page, filename)
            if state is None:
                problems.append(f"{name}: no image shown")
            elif not state["natural"]:
                problems.append(f"{name}: the image did not load (naturalWidth 0)")
            elif state["width"] < 1 or state["height"] < 1:
                problems.append(f"{name}: the image is not visible ({state['width']:.0f} × {state['height']:.0f} px)")
            if "*" in shoot or name in shoot:
                shot(f"{experiment}_{name}")

        # the claims page: the verdict table; its eye icon downloads claims.md
        if not _go(page, "Results", experiment, "claims"):
            problems.append(f"no Results → {experiment} → claims in the report's menu")
            return problems
        table = page.wait_for(_TABLE, 5)
        shot(f"{experiment}_claims")
        head = [h.lower() for h in table["head"]] if table else []
        if not table or "verdict" not in head or not table["rows"]:
            problems.append(f"claims page: no verdict table (found {table})")
        else:
            verdict = table["rows"][0][head.index("verdict")]
            if claims_verdict is not None and verdict != claims_verdict:
                problems.append(f"claims page: verdict {verdict!r}, expected {claims_verdict!r}")
            elif not re.search(r"\d+ hold, \d+ do not hold, \d+ not testable", verdict):
                problems.append(f"claims page: the verdict reads {verdict!r}")
            for column, expected in (claims_columns or {}).items():
                shown = table["rows"][0][head.index(column)] if column in head else None
                if shown != expected:
                    problems.append(f"claims page: column {column!r} reads {shown!r}, expected {expected!r}")
            href = page.js("(() => { const a = document.querySelector('nav table a[iconname=eye]'); return a ? a.href : null; })()")
            if not href or not href.startswith("data:"):
                problems.append("claims page: no download of claims.md")
            elif claims_md is not None and _data_uri_text(href) != claims_md:
                problems.append("claims page: the downloaded claims.md differs from results/…/claims.md")
            _click_row_icon(page, table["rows"][0][0], "information-circle")
            page.wait_for("[...document.querySelectorAll('nav li')].some(li => li.textContent.trim().toLowerCase() === 'description')", 5)
            _text, caption = _details_text(page)
            if len(caption.split()) < 5:
                problems.append(f"claims page: no caption (got {caption!r})")
            shot(f"{experiment}_claims_details")
    return problems


def _data_uri_text(uri: str) -> str:
    header, _, data = uri.partition(",")
    raw = base64.b64decode(data) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(data)
    return raw.decode("utf-8")


# ---- doctoring a report (to show that the check can fail) --------------------------------

_RESULTS = re.compile(r"(<script id=\"results\">\s*var results = )(\{.*?\})(;?\s*</script>)", re.DOTALL)


def _results(html: str) -> tuple[re.Match[str], dict[str, Any]]:
    match = _RESULTS.search(html)
    if match is None:
        raise ValueError("no `var results = {...}` script in this report")
    return match, json.loads(match.group(2))


def experiments_in(html: str) -> list[str]:
    """The experiments a report holds results of (``results/<exp>/…``), in order of appearance."""
    _, results = _results(html)
    return list(dict.fromkeys(key.split("/")[1] for key in results if key.startswith("results/") and key.count("/") >= 2))


def remove_from_report(html: str, result: str, *, image: bool = False, caption: bool = False) -> str:
    """The report's HTML with one result's image data and/or caption removed.

    ``result`` is the key of the report's results table (``results/tiny/figures/fig1.png``).
    The row stays listed: a reader would see an empty image or no description.
    """
    match, results = _results(html)
    if result not in results:
        raise KeyError(f"{result!r} is not in the report; it has {sorted(results)}")
    entry = results[result]
    if image:
        prefix, _, _ = entry["data_uri"].partition(",")
        entry["data_uri"] = prefix + ","  # the header stays, the PNG bytes are gone
    if caption:
        entry["caption"] = ""
    return html[: match.start(2)] + json.dumps(results) + html[match.end(2) :]
