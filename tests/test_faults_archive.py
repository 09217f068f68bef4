"""Fault battery, archives: each broken archive is refused with one line naming it, and nothing
is written. The table of faults is in docs/workflow.md ("Faults and what happens").

The archive here is made by ``create_archive`` from a small hand-made results tree (a real
store, a figure-like file, a log, a Snakemake record), so that no test needs a pipeline run;
tests/test_archive.py restores a real one.
"""

import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from transient_ridge import archive as archive_module
from transient_ridge.archive import MANIFEST, ArchiveError, create_archive, restore_archive, verify_archive
from transient_ridge.store import write_dataset

EXP = "fx"


def _tree(root: Path) -> Path:
    """A results tree of experiment ``fx`` under ``root``."""
    write_dataset(xr.Dataset({"loss": ("step", np.arange(4.0))}, attrs={"M": 4.0}), root / f"results/{EXP}/runs/M4/outputs.zarr")
    (root / f"results/{EXP}/claims.md").write_text("# claims\nall hold\n")
    (root / f"results/{EXP}/figures").mkdir(parents=True)
    (root / f"results/{EXP}/figures/fig.pdf").write_bytes(b"%PDF-1.4 not really" * 50)
    (root / f"logs/{EXP}").mkdir(parents=True)
    (root / f"logs/{EXP}/train.log").write_text("step 1\n")
    output = f"results/{EXP}/claims.md"
    record = root / ".snakemake/metadata" / base64.urlsafe_b64encode(output.encode()).decode()
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"rule": "claims"}))
    return root


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    root = _tree(tmp_path_factory.mktemp("made"))
    return create_archive(EXP, root / "archives" / f"{EXP}.tar.gz", root=root)


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _edit_manifest(members, edit):
    info, data = members[0]
    manifest = json.loads(data)
    edit(manifest)
    return [(info, json.dumps(manifest).encode()), *members[1:]]


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, data


def _listed(manifest, name, data, mtime_ns=1):
    manifest["files"].append({"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "mtime_ns": mtime_ns})


def _restore_cli(archive: Path, directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "transient_ridge.archive", "restore", str(archive), "--directory", str(directory)],
        capture_output=True, text=True, timeout=120,
    )


def _assert_one_line_refusal(archive: Path, tmp_path: Path, *needles: str, capsys=None) -> None:
    """``restore`` exits 1 with one line on stderr naming the archive, no traceback, and writes nothing.

    Through ``main`` in this process when ``capsys`` is given, else in a new process.
    """
    clone = tmp_path / "clone"
    clone.mkdir()
    if capsys is None:
        result = _restore_cli(archive, clone)
        status, out, err = result.returncode, result.stdout, result.stderr
    else:
        status = archive_module.main(["restore", str(archive), "--directory", str(clone)])
        out, err = capsys.readouterr()
    assert status == 1, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(archive) in lines[0], err
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert list(clone.iterdir()) == []


def test_a_truncated_archive_is_refused_in_one_line_and_nothing_is_written(good, tmp_path):
    # the whole command in its own process: exit status 1, one line, no traceback
    truncated = tmp_path / "truncated.tar.gz"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    _assert_one_line_refusal(truncated, tmp_path, "truncated or corrupt")


def test_a_corrupt_archive_is_refused_in_one_line(good, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.tar.gz"
    data = bytearray(good.read_bytes())
    for index in range(len(data) // 2, len(data) // 2 + 64):
        data[index] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    # the flipped bytes land in the gzip stream of a data member or, in a small archive,
    # of the manifest: either way one line naming the archive corrupt
    _assert_one_line_refusal(corrupt, tmp_path, "corrupt", capsys=capsys)


def test_a_file_that_is_not_gzip_at_all_is_refused(tmp_path, capsys):
    junk = tmp_path / "notes.tar.gz"
    junk.write_text("not an archive\n")
    _assert_one_line_refusal(junk, tmp_path, "cannot read the archive", capsys=capsys)


def test_a_manifest_that_is_not_json_is_refused(good, tmp_path, capsys):
    members = _members(good)
    members[0] = (members[0][0], b'{"format": "transient-ridge-archive/1", "files": [')
    _assert_one_line_refusal(_write(tmp_path / "badjson.tar.gz", members), tmp_path, "not valid JSON", capsys=capsys)


def test_a_manifest_without_its_file_list_is_refused(good, tmp_path, capsys):
    members = _edit_manifest(_members(good), lambda manifest: manifest.pop("files"))
    _assert_one_line_refusal(_write(tmp_path / "nofiles.tar.gz", members), tmp_path, "lacks 'experiment' or 'files'", capsys=capsys)


def test_a_manifest_of_another_format_is_refused(good, tmp_path, capsys):
    members = _edit_manifest(_members(good), lambda manifest: manifest.update(format="transient-ridge-archive/0"))
    _assert_one_line_refusal(_write(tmp_path / "format.tar.gz", members), tmp_path, "this code reads", capsys=capsys)


def test_a_member_missing_from_the_manifest_is_refused(good, tmp_path, capsys):
    members = [*_members(good), _file(f"results/{EXP}/extra.txt", b"not listed")]
    _assert_one_line_refusal(_write(tmp_path / "extra.tar.gz", members), tmp_path, "not in the manifest", capsys=capsys)


def test_a_listed_file_missing_from_the_archive_is_refused(good, tmp_path, capsys):
    members = [m for m in _members(good) if not m[0].name.endswith("claims.md")]
    _assert_one_line_refusal(_write(tmp_path / "missing.tar.gz", members), tmp_path, "missing from the archive", capsys=capsys)


def test_an_oversized_member_is_refused_before_it_is_unpacked(good, tmp_path, monkeypatch):
    members = _members(good)
    index = next(i for i, (m, _) in enumerate(members) if m.name.endswith("fig.pdf"))
    members[index] = (members[index][0], members[index][1] * 1000)  # 1000x the size the manifest records
    oversized = _write(tmp_path / "oversized.tar.gz", members)
    unpacked = []
    monkeypatch.setattr(tarfile.TarFile, "extractall", lambda *a, **k: unpacked.append(a))
    with pytest.raises(ArchiveError, match=r"differ in size from the manifest.*fig\.pdf"):
        restore_archive(oversized, root=tmp_path)
    assert unpacked == [] and not (tmp_path / "results").exists()


def test_an_archive_larger_than_the_free_space_is_refused(good, tmp_path, monkeypatch):
    monkeypatch.setattr(archive_module.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 10})())
    with pytest.raises(ArchiveError, match=r"needs .* MB, .* has 0\.0 MB free"):
        restore_archive(good, root=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("name", ["../escaped.txt", f"results/{EXP}/../../../escaped.txt", "/tmp/escaped-absolute.txt"])
def test_a_member_that_climbs_out_of_the_clone_is_refused(good, tmp_path, name, capsys):
    data = b"written outside"

    def edit(manifest):
        _listed(manifest, name, data)

    members = [*_edit_manifest(_members(good), edit), _file(name, data)]
    _assert_one_line_refusal(_write(tmp_path / "traversal.tar.gz", members), tmp_path, "refusing", capsys=capsys)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/escaped-absolute.txt").exists()


def test_a_member_that_would_overwrite_the_workflow_is_refused(good, tmp_path, capsys):
    data = b"rule all: pass\n"
    members = [*_edit_manifest(_members(good), lambda m: _listed(m, "workflow/rules/common.smk", data)), _file("workflow/rules/common.smk", data)]
    _assert_one_line_refusal(_write(tmp_path / "workflow.tar.gz", members), tmp_path, "outside", capsys=capsys)


def test_a_symlink_member_is_refused(good, tmp_path, capsys):
    link = tarfile.TarInfo(f"results/{EXP}/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members = [*_edit_manifest(_members(good), lambda m: _listed(m, f"results/{EXP}/link", b"")), (link, None)]
    _assert_one_line_refusal(_write(tmp_path / "symlink.tar.gz", members), tmp_path, "not plain relative files", capsys=capsys)


def test_a_member_that_appears_twice_is_refused(good, tmp_path, capsys):
    members = _members(good)
    claims = next(m for m in members if m[0].name.endswith("claims.md"))
    members.append((tarfile.TarInfo(claims[0].name), b"# claims\nnone hold\n"))
    _assert_one_line_refusal(_write(tmp_path / "twice.tar.gz", members), tmp_path, "more than once", capsys=capsys)


def test_a_changed_file_is_refused_by_its_checksum(good, tmp_path, capsys):
    members = _members(good)
    index = next(i for i, (m, _) in enumerate(members) if m.name.endswith("claims.md"))
    members[index] = (members[index][0], members[index][1].replace(b"all", b"any"))  # same size, other bytes
    _assert_one_line_refusal(_write(tmp_path / "changed.tar.gz", members), tmp_path, "size or checksum", capsys=capsys)


def test_restore_over_existing_results_is_refused_and_keeps_them(good, tmp_path, capsys):
    clone = tmp_path / "clone"
    (clone / f"results/{EXP}").mkdir(parents=True)
    (clone / f"results/{EXP}/claims.md").write_text("mine")
    status = archive_module.main(["restore", str(good), "--directory", str(clone)])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1 and "--force" in err
    assert (clone / f"results/{EXP}/claims.md").read_text() == "mine"
    assert sorted(p.name for p in (clone / f"results/{EXP}").iterdir()) == ["claims.md"]


def test_restore_at_another_commit_warns_and_names_the_way_out(good, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    if archive_module.git_state(str(repo / "transient_ridge")).commit == "unknown":
        pytest.skip("the repository is not a git checkout: no commit to compare")
    members = _edit_manifest(_members(good), lambda m: m["archived_by"].update(git_commit="0" * 40))
    clone = tmp_path / "clone"
    clone.mkdir()
    # the restore goes on (the results are sound); the warning says that rules whose script
    # changed since will rerun, training included, and how to avoid that
    summary = restore_archive(_write(tmp_path / "other.tar.gz", members), root=clone, workflow=repo)
    assert summary.files == len(json.loads(members[0][1])["files"]) and (clone / f"results/{EXP}/claims.md").exists()
    (warning,) = summary.warnings
    assert warning.startswith("the archive was made at commit 000000000000, this clone is at ")
    assert "training included (from scratch: the archive has no weights)" in warning
    assert "git checkout 000000000000" in warning and "--rerun-triggers mtime params input software-env" in warning


def test_restore_at_the_same_commit_does_not_warn(good):
    manifest = json.loads(_members(good)[0][1])
    assert archive_module.commit_warning(manifest, manifest["archived_by"]["git_commit"]) is None
    assert archive_module.commit_warning(manifest, "unknown") is None
