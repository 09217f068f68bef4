"""Archive one experiment's results and restore them elsewhere without retraining.

An archive is a gzipped tar of

- ``MANIFEST.json`` (first member): the format, the experiment and its config,
  whether weights are in, the stamp of the process that wrote it, the
  provenance stamp of every store and figure, and for every other member its
  path, size, SHA-256 and original mtime (ns);
- ``results/{exp}/**``: stores, figures, claims, benchmark files. Model
  weights (``runs/M*/checkpoints/step_*.pt``, with a seed axis
  ``runs/M*/s*/checkpoints/step_*.pt``) only with ``weights=True``;
  without them each checkpoints folder keeps Snakemake's
  ``.snakemake_timestamp`` and gets a ``WEIGHTS_NOT_ARCHIVED.txt`` note, so
  Snakemake still sees ``train``'s output and does not retrain;
- ``logs/{exp}/**``: the jobs' logs;
- ``.snakemake/metadata/…``: Snakemake's records for those outputs (rule,
  params, input list). Without them a restored output has no record and
  Snakemake's params trigger cannot fire, so a changed figure setting would
  not redraw the figures.

Restoring verifies every checksum before it moves anything into place, and
refuses to overwrite existing files. It then gives the restored files new
mtimes that keep their original order (1 ms apart, the newest at "now") and are
newer than every workflow source file: Snakemake reruns a job whose output is
older than its script, and a fresh clone's scripts are as new as the clone.

Command line (run from the repository root, the workflow's working directory)::

    python -m transient_ridge.archive create mini [--weights] [--output PATH]
    python -m transient_ridge.archive restore archives/mini.tar.gz [--force]
    python -m transient_ridge.archive verify archives/mini.tar.gz
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .provenance import ProvenanceError, current_stamp, git_state, read_provenance
from .runtime import one_line

__all__ = [
    "FORMAT",
    "MANIFEST",
    "NO_WEIGHTS_NOTE",
    "ArchiveError",
    "RestoreSummary",
    "archive_name",
    "create_archive",
    "commit_warning",
    "read_manifest",
    "verify_archive",
    "restore_archive",
    "main",
]

FORMAT = "transient-ridge-archive/1"
MANIFEST = "MANIFEST.json"
NO_WEIGHTS_NOTE = "WEIGHTS_NOT_ARCHIVED.txt"
METADATA = Path(".snakemake") / "metadata"
TIMESTAMP = ".snakemake_timestamp"
MTIME_STEP_NS = 1_000_000  # 1 ms between consecutive restored mtimes
WORKFLOW_SOURCES = ("Snakefile", "workflow", "config.yaml")

_NOTE_TEXT = """\
The model weights of this run were not archived (the archive was made without
weights). Snakemake treats this folder as train's finished output, so figures,
claims, evaluation and PCA rebuild without training. Jobs that need the
weights (llc_run, llc_calibration, after their settings change) cannot run:
restore an archive made with weights (snakemake archive_<exp>_weights), or
retrain with  snakemake -c 2 <exp> --forcerun train
"""


class ArchiveError(RuntimeError):
    """A malformed archive, a checksum mismatch or a restore that would overwrite files."""


# What reading a damaged .tar.gz raises: a truncated gzip stream (EOFError), a bad
# header or CRC (tarfile.ReadError, gzip.BadGzipFile, an OSError), a corrupt deflate
# block (zlib.error). Each becomes one ArchiveError naming the archive.
_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def archive_name(experiment: str, weights: bool) -> str:
    """The archive's file name under ``archives/``: ``mini.tar.gz`` or ``mini-with-weights.tar.gz``."""
    return f"{experiment}{'-with-weights' if weights else ''}.tar.gz"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_output(record: Path, metadata_dir: Path) -> str:
    """The output path a Snakemake metadata record is about (urlsafe base64 of the path,
    split into ``@``-prefixed folders when longer than a file name may be)."""
    parts = record.relative_to(metadata_dir).parts
    encoded = "".join(part[1:] if part.startswith("@") else part for part in parts)
    return base64.urlsafe_b64decode(encoded).decode()


def _is_scratch(relative: Path) -> bool:
    """Temporary and resume files that are not results (partial writes, training resume state)."""
    return any(part == ".resume" or ".tmp-" in part or part.endswith(".partial") for part in relative.parts)


def _result_files(root: Path, experiment: str, weights: bool) -> tuple[list[Path], list[Path]]:
    """Files to archive (relative to ``root``) and the checkpoints folders whose weights stay out."""
    files: list[Path] = []
    weightless: list[Path] = []
    for top in (Path("results") / experiment, Path("logs") / experiment):
        for path in sorted((root / top).rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or _is_scratch(relative):
                continue
            if not weights and relative.parent.name == "checkpoints" and relative.name != TIMESTAMP:
                if relative.parent not in weightless:
                    weightless.append(relative.parent)
                continue
            files.append(relative)
    return files, weightless


def _metadata_records(root: Path, experiment: str) -> list[Path]:
    metadata_dir = root / METADATA
    if not metadata_dir.is_dir():
        return []
    prefix = f"results/{experiment}/"
    records = []
    for record in sorted(metadata_dir.rglob("*")):
        if not record.is_file():
            continue
        try:
            output = _record_output(record, metadata_dir)
        except (ValueError, UnicodeDecodeError):
            continue
        if output.startswith(prefix) and (root / output).exists():
            records.append(record.relative_to(root))
    return records


def _stamps(root: Path, files: Iterable[Path]) -> dict[str, Any]:
    """Provenance of every figure (its PNG) and store (its root folder) among ``files``."""
    stamps: dict[str, Any] = {}
    for relative in files:
        if relative.name == "zarr.json" and not (root / relative.parent.parent / "zarr.json").exists():
            target = relative.parent
        elif relative.suffix == ".png" or relative.name == "claims.json":
            target = relative
        else:
            continue
        try:
            stamps[str(target)] = read_provenance(root / target)
        except (ProvenanceError, ValueError, KeyError):
            stamps[str(target)] = "no provenance stamp (made before stamps existed)"
    return stamps


def _experiment_config(root: Path, experiment: str) -> dict[str, Any] | None:
    """The experiment config the results were last made with: the ``config`` attr of the
    experiment-level store written last (its provenance's ``created_utc``).

    Stages run at different times: the task data may predate an edit of ``llc`` after
    which only the LLC stages reran, so the oldest store's config would report a
    difference that Snakemake no longer sees.
    """
    from .store import open_dataset  # xarray and zarr: only `create` needs them, restore starts fast

    results = root / "results" / experiment
    newest: tuple[str, dict[str, Any]] | None = None
    for store in [results / "data" / "tasks.zarr", *sorted(results.glob("*.zarr"))]:
        if not store.exists():
            continue
        attrs = open_dataset(store, load=False).attrs
        if "config" not in attrs:
            continue
        stamp = attrs.get("provenance")
        created = str(stamp.get("created_utc", "")) if isinstance(stamp, dict) else ""
        if newest is None or created > newest[0]:
            newest = (created, json.loads(attrs["config"]))
    return None if newest is None else newest[1]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def create_archive(
    experiment: str,
    output: str | Path,
    *,
    root: str | Path = ".",
    weights: bool = False,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write the archive of ``results/{experiment}`` (under ``root``) to ``output``, atomically.

    ``config`` is the experiment's config block recorded in the manifest (restore
    compares the clone's config.yaml with it). The ``archive`` rule passes the config
    Snakemake has just checked the experiment's targets against; without it, the
    config of the experiment store written last is recorded.
    Returns ``output``. Raises :class:`ArchiveError` if there are no results.
    """
    root = Path(root)
    output = Path(output)
    if not (root / "results" / experiment).is_dir():
        raise ArchiveError(f"no results/{experiment} under {root.resolve()}; build it first: snakemake -c 2 {experiment}")
    files, weightless = _result_files(root, experiment, weights)
    records = _metadata_records(root, experiment)
    entries = []
    for relative in files + records:
        stat = (root / relative).stat()
        entries.append(
            {"path": relative.as_posix(), "size": stat.st_size, "sha256": _sha256(root / relative), "mtime_ns": stat.st_mtime_ns}
        )
    note = _NOTE_TEXT.encode()
    for folder in weightless:
        timestamp = root / folder / TIMESTAMP
        mtime_ns = (timestamp if timestamp.exists() else root / folder).stat().st_mtime_ns
        entries.append(
            {
                "path": (folder / NO_WEIGHTS_NOTE).as_posix(),
                "size": len(note),
                "sha256": hashlib.sha256(note).hexdigest(),
                "mtime_ns": mtime_ns,
            }
        )
    manifest = {
        "format": FORMAT,
        "experiment": experiment,
        "weights": weights,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "archived_by": current_stamp(),
        "config": config if config is not None else _experiment_config(root, experiment),
        "restore": f"python -m transient_ridge.archive restore {archive_name(experiment, weights)}",
        "files": entries,
        "stamps": _stamps(root, files),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with tarfile.open(temporary, "w:gz", compresslevel=6) as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode(), time.time())
            for entry in entries:
                path = Path(entry["path"])
                if path.name == NO_WEIGHTS_NOTE and path.parent in weightless:
                    _add_bytes(tar, entry["path"], note, entry["mtime_ns"] / 1e9)
                else:
                    tar.add(root / path, arcname=entry["path"], recursive=False)
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return output


def _allowed_prefixes(experiment: str) -> tuple[str, ...]:
    """The folders an archive of ``experiment`` may write into (relative to the workflow's directory)."""
    return (f"results/{experiment}/", f"logs/{experiment}/", f"{METADATA.as_posix()}/")


def _check_manifest(archive: Path, manifest: Any) -> dict[str, Any]:
    """``manifest`` if it has the fields restore relies on, with safe relative paths; else ArchiveError."""
    if not isinstance(manifest, dict):
        raise ArchiveError(f"{archive}: {MANIFEST} is not a JSON object; the archive is corrupt")
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"{archive}: format {manifest.get('format')!r}, this code reads {FORMAT!r}")
    experiment, files = manifest.get("experiment"), manifest.get("files")
    if not isinstance(experiment, str) or not experiment or not isinstance(files, list):
        raise ArchiveError(f"{archive}: {MANIFEST} lacks 'experiment' or 'files'; the archive is corrupt")
    fields = {"path": str, "size": int, "sha256": str, "mtime_ns": int}
    prefixes = _allowed_prefixes(experiment)
    for entry in files:
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in fields.items()):
            raise ArchiveError(f"{archive}: {MANIFEST} has a malformed file entry {str(entry)[:200]}; the archive is corrupt")
        if not _safe_member(entry["path"]) or not entry["path"].startswith(prefixes):
            raise ArchiveError(
                f"{archive}: {MANIFEST} lists {entry['path']!r}, outside {list(prefixes)}; "
                "refusing an archive that would write anywhere else"
            )
    paths = [entry["path"] for entry in files]
    if len(set(paths)) != len(paths):
        duplicated = sorted({path for path in paths if paths.count(path) > 1})
        raise ArchiveError(f"{archive}: {MANIFEST} lists {duplicated[:5]} more than once")
    return manifest


def read_manifest(archive: str | Path) -> dict[str, Any]:
    """The manifest of ``archive`` (its first member), checked for format, fields and paths."""
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"{archive} does not exist")
    try:
        with tarfile.open(archive, "r:*") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise ArchiveError(f"{archive}: the first member is not {MANIFEST}; not an archive made by this pipeline")
            manifest = json.loads(tar.extractfile(first).read())  # type: ignore[union-attr]
    except _READ_ERRORS as error:
        raise ArchiveError(f"{archive}: cannot read the archive ({one_line(error)}); it is truncated or corrupt") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{archive}: {MANIFEST} is not valid JSON ({one_line(error)}); the archive is corrupt") from error
    return _check_manifest(archive, manifest)


def _safe_member(name: str) -> bool:
    path = Path(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


def _check_members(archive: Path, members: list[tarfile.TarInfo], listed: dict[str, dict[str, Any]]) -> None:
    """Refuse members that are not plain relative files, repeat, or disagree with the manifest."""
    unsafe = [m.name for m in members if not m.isfile() or not _safe_member(m.name)]
    if unsafe:
        raise ArchiveError(f"{archive}: refusing members that are not plain relative files: {unsafe[:5]}")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ArchiveError(f"{archive}: members {repeated[:5]} appear more than once (a later copy would overwrite the first)")
    if set(names) != set(listed):
        raise ArchiveError(
            f"{archive}: members and manifest disagree (not in the manifest: {sorted(set(names) - set(listed))[:5]}, "
            f"missing from the archive: {sorted(set(listed) - set(names))[:5]})"
        )
    wrong_size = [f"{m.name} ({m.size} bytes, manifest {listed[m.name]['size']})" for m in members if m.size != listed[m.name]["size"]]
    if wrong_size:
        raise ArchiveError(f"{archive}: {len(wrong_size)} member(s) differ in size from the manifest, e.g. {wrong_size[:3]}")


def _check_free_space(archive: Path, manifest: dict[str, Any], where: Path) -> None:
    """Refuse to unpack more bytes than ``where`` has free (the manifest's sizes, checked against the members)."""
    needed = sum(entry["size"] for entry in manifest["files"])
    probe = where if where.exists() else next(p for p in where.parents if p.exists())
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise ArchiveError(
            f"{archive}: restoring needs {needed / 1e6:.1f} MB, {probe.resolve()} has {free / 1e6:.1f} MB free; "
            "free some space or restore elsewhere with --directory"
        )


def _unpack_verified(archive: Path, staging: Path) -> dict[str, Any]:
    """Unpack ``archive`` into ``staging`` and check every file against the manifest.

    Members, their sizes and the free space are checked before anything is
    unpacked; checksums and sizes of the unpacked files after. Any failure is an
    :class:`ArchiveError`.
    """
    manifest = read_manifest(archive)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.name != MANIFEST]
            _check_members(archive, members, listed)
            _check_free_space(archive, manifest, staging.parent)
            # members are checked above to be plain relative files; the "data" filter (Python
            # >= 3.11.4) also drops unusual modes and owners
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **extra)
    except ArchiveError:
        raise
    except _READ_ERRORS as error:
        raise ArchiveError(
            f"{archive}: cannot read the archive ({one_line(error)}); it is truncated or corrupt. "
            "Nothing was restored."
        ) from error
    mismatched = [
        name
        for name, entry in listed.items()
        if (staging / name).stat().st_size != entry["size"] or _sha256(staging / name) != entry["sha256"]
    ]
    if mismatched:
        raise ArchiveError(
            f"{archive}: {len(mismatched)} file(s) do not match their manifest size or checksum, e.g. {mismatched[:5]}; "
            "the archive is corrupt or was changed after it was made. Nothing was restored."
        )
    return manifest


def verify_archive(archive: str | Path) -> dict[str, Any]:
    """Check every member's SHA-256 against the manifest (unpacks to a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="transient-ridge-verify-") as staging:
        return _unpack_verified(Path(archive), Path(staging))


def _newest_source_ns(workflow: Path) -> int:
    newest = 0
    for name in WORKFLOW_SOURCES:
        path = workflow / name
        candidates = path.rglob("*") if path.is_dir() else [path]
        for candidate in candidates:
            if candidate.is_file():
                newest = max(newest, candidate.stat().st_mtime_ns)
    return newest


def restored_mtimes(original_ns: dict[str, int], now_ns: int, newest_source_ns: int) -> dict[str, int]:
    """New mtimes that keep the order (and ties) of ``original_ns``, ``MTIME_STEP_NS`` apart.

    The newest file gets ``now_ns`` unless that would put the oldest before
    ``newest_source_ns``; then everything moves later, just past the sources.
    """
    ranks = {value: rank for rank, value in enumerate(sorted(set(original_ns.values())))}
    start = max(now_ns - (len(ranks) - 1) * MTIME_STEP_NS, newest_source_ns + MTIME_STEP_NS)
    return {path: start + ranks[value] * MTIME_STEP_NS for path, value in original_ns.items()}


@dataclasses.dataclass(frozen=True)
class RestoreSummary:
    """What a restore did: ``files`` restored, and what the user should know before rerunning."""

    experiment: str
    files: int
    weights: bool
    config_differences: list[str]
    warnings: list[str] = dataclasses.field(default_factory=list)


def commit_warning(manifest: dict[str, Any], clone_commit: str) -> str | None:
    """A warning when the archive was made at another commit than the clone's ``HEAD``; else None.

    At another commit Snakemake's code trigger reruns every rule whose script
    differs, training included (from step 0 when the archive has no weights).
    """
    archived = str((manifest.get("archived_by") or {}).get("git_commit", "unknown"))
    if "unknown" in (archived, clone_commit) or archived == clone_commit:
        return None
    exp = manifest["experiment"]
    retrain = "from scratch: the archive has no weights" if not manifest.get("weights") else "from the archived weights"
    return (
        f"the archive was made at commit {archived[:12]}, this clone is at {clone_commit[:12]}: Snakemake reruns "
        f"every rule whose script differs, training included ({retrain}). Check out {archived[:12]} "
        f"(git checkout {archived[:12]}), or keep the restored results with "
        f"snakemake -c 2 {exp} --rerun-triggers mtime params input software-env"
    )


def _config_differences(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Top-level config sections in which ``root``'s config.yaml differs from the archived one."""
    archived = manifest.get("config")
    path = root / "config.yaml"
    if archived is None or not path.exists():
        return []
    from .config import load_yaml

    current = load_yaml(path).get("experiments", {}).get(manifest["experiment"])
    if current is None:
        return [f"(all: experiment {manifest['experiment']!r} is not in {path}; ignore this if you pass its config with --configfile)"]
    archived = {key: value for key, value in archived.items() if key != "name"}
    keys = sorted(set(archived) | set(current))
    normal = lambda value: json.loads(json.dumps(value, sort_keys=True, default=str))  # noqa: E731
    return [key for key in keys if normal(archived.get(key)) != normal(current.get(key))]


def restore_archive(
    archive: str | Path, *, root: str | Path = ".", workflow: str | Path | None = None, force: bool = False
) -> RestoreSummary:
    """Unpack ``archive`` into ``root`` (the workflow's working directory), verified.

    ``workflow`` is the folder holding ``Snakefile`` and ``workflow/`` (default:
    ``root``). Refuses to overwrite existing files unless ``force``.
    """
    archive = Path(archive)
    root = Path(root)
    workflow = Path(workflow) if workflow is not None else root
    manifest = read_manifest(archive)
    paths = [entry["path"] for entry in manifest["files"]]
    existing = [path for path in paths if (root / path).exists()]
    if existing and not force:
        raise ArchiveError(
            f"restoring {archive} would overwrite {len(existing)} existing file(s) under {root.resolve()}, "
            f"e.g. {existing[:3]}; restore into a fresh clone, or pass --force to replace them"
        )
    staging = root / f".archive-restore-{uuid.uuid4().hex[:8]}"
    try:
        manifest = _unpack_verified(archive, staging)
        for path in paths:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    mtimes = restored_mtimes(
        {entry["path"]: entry["mtime_ns"] for entry in manifest["files"]}, time.time_ns(), _newest_source_ns(workflow)
    )
    for path, mtime_ns in mtimes.items():
        os.utime(root / path, ns=(mtime_ns, mtime_ns))
    clone_commit = git_state(str(workflow.resolve() / "transient_ridge")).commit
    warning = commit_warning(manifest, clone_commit)
    return RestoreSummary(
        manifest["experiment"],
        len(paths),
        bool(manifest.get("weights")),
        _config_differences(root, manifest),
        [warning] if warning else [],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m transient_ridge.archive",
        description="Archive an experiment's results, or restore an archive so that Snakemake rebuilds "
        "figures and claims without training.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="archive results/EXP (run from the repository root)")
    create.add_argument("experiment")
    create.add_argument("--weights", action="store_true", help="include the model weights (checkpoints)")
    create.add_argument("--output", help="archive path (default: archives/EXP.tar.gz or archives/EXP-with-weights.tar.gz)")
    restore = commands.add_parser("restore", help="unpack an archive into this clone, checksums verified")
    restore.add_argument("archive")
    restore.add_argument("--directory", default=".", help="the workflow's working directory (default: .)")
    restore.add_argument("--force", action="store_true", help="overwrite files that already exist")
    verify = commands.add_parser("verify", help="check an archive's checksums without restoring")
    verify.add_argument("archive")
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            output = args.output or Path("archives") / archive_name(args.experiment, args.weights)
            path = create_archive(args.experiment, output, weights=args.weights)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        elif args.command == "verify":
            manifest = verify_archive(args.archive)
            print(f"{args.archive}: {len(manifest['files'])} files, every checksum matches")
        else:
            summary = restore_archive(args.archive, root=args.directory, force=args.force)
            print(
                f"restored {summary.files} files of {summary.experiment} "
                f"({'with' if summary.weights else 'without'} weights); "
                f"now `snakemake -c 2 {summary.experiment}` rebuilds only what changed"
            )
            if summary.config_differences:
                print(
                    f"note: config.yaml differs from the archived config in {summary.config_differences}; "
                    "Snakemake will rerun the stages that read those sections",
                )
            for warning in summary.warnings:
                print(f"WARNING: {warning}", file=sys.stderr)
    except (ArchiveError, OSError) as error:  # OSError: the file system, not the archive (permissions, a full disk)
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
