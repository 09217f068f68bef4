"""Where an output came from: a stamp written into every store and figure, and a reader.

A stamp is a JSON-safe dict::

    {"git_commit": "4e51b1c…" | "unknown", "git_dirty": true | false | "unknown",
     "git_diff_sha256": "…" | null | "unknown", "git_untracked": ["new_module.py"] | "unknown",
     "rule": "train" | "none (outside Snakemake)", "wildcards": {"exp": "mini", "M": "4"},
     "stage_settings_sha256": "…", "stage_settings_keys": ["data", "model", …],
     "versions": {"transient_ridge": …, "python": …, "torch": …, "numpy": …,
                  "xarray": …, "zarr": …, "snakemake": …},
     "created_utc": "2026-11-27T01:40:00Z"}

``stage_settings`` are the rule's ``params.settings``: the config sections the
stage reads (``STAGE_SECTIONS`` in ``workflow/rules/common.smk``, through
``ExperimentConfig.fingerprint``), exactly what Snakemake's params trigger
compares. Their SHA-256 is over ``json.dumps(settings, sort_keys=True)``.

The checkout is dirty when it has tracked changes (``git diff HEAD``) or
untracked files that ``.gitignore`` does not cover (a new module never
``git add``-ed changes results as much as an edit does). ``git_diff_sha256`` is
the SHA-256 of ``git diff HEAD --binary`` (``null`` without tracked changes), so
two outputs made from the same uncommitted edit carry the same hash;
``git_untracked`` lists the untracked paths (relative to the checkout's top level,
at most ``MAX_UNTRACKED``, then a line counting the rest).

The git lookup and the version lookup run once per process (a Snakemake job is
one process), never per checkpoint. Outside a git checkout (an unpacked
archive, a pip install) every git field is ``"unknown"``.

This module imports nothing else of the package: :mod:`transient_ridge.store`
stamps what it writes with :func:`current_stamp`, and a store's stamp is read
here from its ``zarr.json`` (zarr format 3, the format ``store`` writes).

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
from typing import Any, NamedTuple

__all__ = [
    "PNG_KEY",
    "PDF_KEY",
    "ProvenanceError",
    "GitState",
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
MAX_UNTRACKED = 50  # untracked paths listed in a stamp; more are counted

_job: dict[str, Any] = {}


class ProvenanceError(ValueError):
    """A path that carries no provenance stamp (or is not a figure or store)."""


class GitState(NamedTuple):
    """The checkout an output was made from.

    ``commit``: ``HEAD``; ``dirty``: tracked changes or untracked (not ignored) files;
    ``diff_sha256``: SHA-256 of ``git diff HEAD --binary``, ``None`` without tracked changes;
    ``untracked``: untracked paths relative to the top level. Every field is
    ``"unknown"`` outside a git checkout.
    """

    commit: str
    dirty: bool | str
    diff_sha256: str | None
    untracked: tuple[str, ...] | str


UNKNOWN_GIT = GitState(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)


def _listed(paths: list[str], limit: int = MAX_UNTRACKED) -> tuple[str, ...]:
    """``paths`` cut to ``limit`` entries, the rest counted in a last entry."""
    if len(paths) <= limit:
        return tuple(paths)
    return (*paths[:limit], f"... and {len(paths) - limit} more")


@functools.lru_cache(maxsize=None)
def git_state(directory: str | None = None) -> GitState:
    """The :class:`GitState` of the checkout holding this package (``directory``: its folder).

    The package directory must be ``<toplevel>/transient_ridge`` of the checkout,
    so a copy installed into a virtual environment that happens to live inside
    some other checkout does not report that checkout's commit.
    """
    package = Path(directory) if directory else Path(__file__).resolve().parent

    def git(*args: str, where: Path = package) -> bytes:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, check=True, timeout=60).stdout

    try:
        toplevel = Path(git("rev-parse", "--show-toplevel").decode().strip()).resolve()
        if toplevel / package.name != package.resolve():
            return UNKNOWN_GIT
        commit = git("rev-parse", "HEAD", where=toplevel).decode().strip()
        diff = git("diff", "HEAD", "--binary", "--no-ext-diff", "--no-color", where=toplevel)
        untracked = git("ls-files", "--others", "--exclude-standard", "-z", where=toplevel).decode()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN_GIT
    paths = sorted(path for path in untracked.split("\0") if path)
    return GitState(
        commit=commit,
        dirty=bool(diff) or bool(paths),
        diff_sha256=hashlib.sha256(diff).hexdigest() if diff else None,
        untracked=_listed(paths),
    )


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
    git = git_state()
    settings = _job.get("settings", {})
    return {
        "git_commit": git.commit,
        "git_dirty": git.dirty,
        "git_diff_sha256": git.diff_sha256,
        "git_untracked": git.untracked if isinstance(git.untracked, str) else list(git.untracked),
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
    """The stamp in a zarr (format 3) group's attributes, read from its ``zarr.json``."""
    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError) as error:
        raise ProvenanceError(f"{path}: its zarr.json cannot be read as zarr group metadata ({error})") from error
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
