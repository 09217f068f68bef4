"""Where an output came from: a stamp written into every store and figure, and a reader.

A stamp is a JSON-safe dict::

    {"git_commit": "4e51b1c…" | "unknown", "git_dirty": true | false | "unknown",
     "rule": "train" | "none (outside Snakemake)", "wildcards": {"exp": "mini", "M": "4"},
     "stage_settings_sha256": "…", "stage_settings_keys": ["data", "model", …],
     "versions": {"transient_ridge": …, "python": …, "torch": …, "numpy": …,
                  "xarray": …, "zarr": …, "snakemake": …},
     "created_utc": "2026-11-27T01:40:00Z"}

``stage_settings`` are the rule's ``params.settings``: the config sections the
stage reads (``STAGE_SECTIONS`` in ``workflow/rules/common.smk``, through
``ExperimentConfig.fingerprint``), exactly what Snakemake's params trigger
compares. Their SHA-256 is over ``json.dumps(settings, sort_keys=True)``.

The git lookup and the version lookup run once per process (a Snakemake job is
one process), never per checkpoint. Outside a git checkout (an unpacked
archive, a pip install) the commit and the dirty flag are ``"unknown"``.

Run ``python -m transient_ridge.provenance PATH`` to print the stamp of a
figure (``.png`` / ``.pdf``), a zarr store or a ``claims.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "PNG_KEY",
    "PDF_KEY",
    "ProvenanceError",
    "git_state",
    "software_versions",
    "start_job",
    "current_stamp",
    "settings_digest",
    "read_provenance",
    "main",
]

PNG_KEY = "transient_ridge:provenance"  # PNG tEXt chunk keyword
PDF_KEY = "Subject"  # a standard PDF info key (matplotlib warns on non-standard ones)
PACKAGES = ("transient-ridge", "torch", "numpy", "xarray", "zarr", "snakemake")
OUTSIDE_SNAKEMAKE = "none (outside Snakemake)"
UNKNOWN = "unknown"

_job: dict[str, Any] = {}


class ProvenanceError(ValueError):
    """A path that carries no provenance stamp (or is not a figure or store)."""


@functools.lru_cache(maxsize=None)
def git_state(directory: str | None = None) -> tuple[str, bool | str]:
    """``(commit, dirty)`` of the checkout holding this package; ``("unknown", "unknown")`` if none.

    The package directory must be ``<toplevel>/transient_ridge`` of the checkout,
    so a copy installed into a virtual environment that happens to live inside
    some other checkout does not report that checkout's commit.
    """
    package = Path(directory) if directory else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(package), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        toplevel = Path(git("rev-parse", "--show-toplevel")).resolve()
        if toplevel / package.name != package.resolve():
            return UNKNOWN, UNKNOWN
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN, UNKNOWN
    return commit, dirty


@functools.lru_cache(maxsize=None)
def software_versions() -> dict[str, str]:
    """Installed versions (read from package metadata: nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name.replace("-", "_")] = version(name)
        except PackageNotFoundError:
            versions[name.replace("-", "_")] = "not installed"
    return versions


def settings_digest(settings: Any) -> str:
    """SHA-256 of ``settings`` as sorted-key JSON (the stage's config sections)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def start_job(smk: Any) -> None:
    """Record the Snakemake job this process runs (call once, from a workflow script).

    Reads ``smk.rule``, ``smk.wildcards`` and ``smk.params.settings`` (absent for
    rules whose output depends on no config section).
    """
    git_state(), software_versions()  # looked up now: a long job's stamp says what it started from
    params = getattr(smk, "params", None)
    settings = params.get("settings") if hasattr(params, "get") else None
    wildcards = getattr(smk, "wildcards", None)
    _job.clear()
    _job.update(
        rule=str(getattr(smk, "rule", None) or OUTSIDE_SNAKEMAKE),
        wildcards={key: str(value) for key, value in wildcards.items()} if hasattr(wildcards, "items") else {},
        settings=settings if settings is not None else {},
    )


def current_stamp() -> dict[str, Any]:
    """The stamp for an output written now by this process."""
    commit, dirty = git_state()
    settings = _job.get("settings", {})
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "rule": _job.get("rule", OUTSIDE_SNAKEMAKE),
        "wildcards": dict(_job.get("wildcards", {})),
        "stage_settings_keys": sorted(settings) if isinstance(settings, Mapping) else [],
        "stage_settings_sha256": settings_digest(settings),
        "versions": software_versions(),
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# ---- reading ------------------------------------------------------------------------

_PDF_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "(": "(", ")": ")", "\\": "\\"}


def _pdf_literal(data: str, start: int) -> str:
    """The PDF literal string that opens at ``data[start] == "("`` (balanced parentheses, escapes)."""
    out: list[str] = []
    depth, i = 0, start
    while i < len(data):
        char = data[i]
        if char == "\\":
            nxt = data[i + 1]
            if nxt in _PDF_ESCAPES:
                out.append(_PDF_ESCAPES[nxt])
                i += 2
                continue
            octal = re.match(r"[0-7]{1,3}", data[i + 1 : i + 4])
            if octal:
                out.append(chr(int(octal.group(), 8)))
                i += 1 + len(octal.group())
                continue
            i += 2  # line continuation or unknown escape: dropped, as the PDF spec says
            continue
        if char == "(":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                return "".join(out)
        out.append(char)
        i += 1
    raise ProvenanceError("unterminated string in the PDF info dictionary")


def _read_pdf(path: Path) -> dict[str, Any]:
    data = path.read_bytes().decode("latin-1")
    match = re.search(rf"/{PDF_KEY}\s*\(", data)
    if match is None:
        raise ProvenanceError(f"{path}: the PDF has no /{PDF_KEY} entry; it was not written by this pipeline's save_figure")
    return json.loads(_pdf_literal(data, match.end() - 1))


def _read_png(path: Path) -> dict[str, Any]:
    from PIL import Image

    with Image.open(path) as image:
        text = dict(getattr(image, "text", {}))
    if PNG_KEY not in text:
        raise ProvenanceError(f"{path}: the PNG has no {PNG_KEY!r} text chunk; it was not written by this pipeline's save_figure")
    return json.loads(text[PNG_KEY])


def _read_store(path: Path) -> dict[str, Any]:
    from .store import open_dataset

    attrs = open_dataset(path, load=False).attrs
    if "provenance" not in attrs:
        raise ProvenanceError(f"{path}: the store has no 'provenance' attribute (written before provenance stamps existed?)")
    stamp = dict(attrs["provenance"])
    for key in ("experiment", "code_version"):
        if key in attrs:
            stamp.setdefault(key, attrs[key])
    return stamp


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The stamp of a figure (``.png`` / ``.pdf``), a zarr store (a directory with ``zarr.json``)
    or a ``claims.json``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir() and (path / "zarr.json").exists():
        return _read_store(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return _read_png(path)
    if suffix == ".pdf":
        return _read_pdf(path)
    if suffix == ".json":
        payload = json.loads(path.read_text())
        if not isinstance(payload, dict) or "provenance" not in payload:
            raise ProvenanceError(f"{path}: this JSON file has no 'provenance' entry (claims.json has one)")
        return dict(payload["provenance"])
    raise ProvenanceError(
        f"{path}: not a figure (.png, .pdf), a zarr store (a directory with zarr.json) or claims.json; "
        "provenance is stamped only into those"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m transient_ridge.provenance",
        description="Print where a figure (.png/.pdf) or a zarr store came from.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="print JSON instead of aligned text")
    args = parser.parse_args(argv)
    status = 0
    for path in args.paths:
        try:
            stamp = read_provenance(path)
        except (ProvenanceError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps({"path": str(path), **stamp}, indent=2, sort_keys=True))
            continue
        print(path)
        for key, value in sorted(stamp.items()):
            if isinstance(value, Mapping):
                value = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
            elif isinstance(value, list):
                value = ", ".join(map(str, value))
            print(f"  {key:<22} {value if value not in ('', None) else '(none)'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
