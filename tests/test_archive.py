"""Archive and restore: a restored tiny run rebuilds without training, and a changed
figure setting reruns only figures and claims.

One tiny run (one M, no calibration, one figure and the claims) is built once for
the module; the "fresh clone" is a copy of the workflow files in another folder.
"""

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_BLOCK
from test_workflow import SNAKEMAKE, _job_counts
from transient_ridge.archive import (
    MANIFEST,
    NO_WEIGHTS_NOTE,
    ArchiveError,
    read_manifest,
    restore_archive,
    restored_mtimes,
    verify_archive,
)
from transient_ridge.provenance import read_provenance

TARGETS = ["results/tiny/claims.md", "results/tiny/figures/fig1_ood_loss.png"]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "envs")


def _tiny_config(path, smoothing_window=1):
    block = json.loads(json.dumps(TINY_BLOCK))
    block["data"]["M"] = [1]  # one run keeps the module under a minute; two runs add nothing to what is tested
    block["llc"].pop("calibration")
    block["figures"]["smoothing_window"] = smoothing_window
    path.write_text(yaml.safe_dump({"experiments": {"tiny": block}}))
    return str(path)


def _snakemake(*args, cwd):
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _archive_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "transient_ridge.archive", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _fresh_clone(folder):
    folder.mkdir()
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, folder / name)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny run built by Snakemake in its own working directory, and its archive."""
    root = tmp_path_factory.mktemp("archive")
    work = root / "work"
    config = _tiny_config(root / "tiny.yaml")
    result = _snakemake("-c", "2", *TARGETS, "--configfile", config, "--directory", str(work), "--snakefile", str(REPO / "Snakefile"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    made = _archive_cli("create", "tiny", cwd=work)
    assert made.returncode == 0, made.stderr
    return root, work, work / "archives" / "tiny.tar.gz"


def test_a_restored_run_rebuilds_nothing_and_a_figure_setting_reruns_only_figures_and_claims(built, tmp_path):
    root, _, archive = built
    clone = _fresh_clone(tmp_path / "clone")
    restored = _archive_cli("restore", str(archive), cwd=clone)
    assert restored.returncode == 0, restored.stderr
    assert (clone / "results/tiny/runs/M1/checkpoints" / NO_WEIGHTS_NOTE).exists()

    config = _tiny_config(tmp_path / "same.yaml")
    result = _snakemake("-n", *TARGETS, "--configfile", config, cwd=clone)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]

    smoother = _tiny_config(tmp_path / "smoother.yaml", smoothing_window=3)
    result = _snakemake("-n", *TARGETS, "--configfile", smoother, cwd=clone)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = _job_counts(result.stdout)
    counts.pop("total", None)
    assert counts == {"claims": 1, "figures_runs": 1}, result.stdout[-3000:]  # fig1_ood_loss's group


def test_the_archive_holds_a_checksummed_manifest_with_provenance_and_no_weights(built):
    _, work, archive = built
    manifest = verify_archive(archive)
    paths = {entry["path"] for entry in manifest["files"]}
    assert manifest["experiment"] == "tiny" and manifest["weights"] is False
    assert "results/tiny/claims.md" in paths and "results/tiny/runs/M1/outputs.zarr/zarr.json" in paths
    assert any(path.startswith("results/tiny/benchmarks/") for path in paths)
    assert any(path.startswith(".snakemake/metadata/") for path in paths)
    assert not any(path.endswith(".pt") for path in paths)
    assert manifest["stamps"]["results/tiny/runs/M1/outputs.zarr"]["rule"] == "evaluate"
    assert manifest["stamps"]["results/tiny/figures/fig1_ood_loss.png"]["rule"] == "figures_runs"
    assert manifest["config"]["data"]["M"] == [1]


def test_restore_refuses_a_changed_file_and_restores_nothing(built, tmp_path):
    _, _, archive = built
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(tampered, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "results/tiny/claims.md":
                data = data.replace(b"holds", b"fails")
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    clone = tmp_path / "clone"
    clone.mkdir()
    with pytest.raises(ArchiveError, match="checksum"):
        restore_archive(tampered, root=clone)
    assert not (clone / "results").exists()
    assert [p.name for p in clone.iterdir()] == []


def test_restore_refuses_to_overwrite_existing_results(built, tmp_path):
    _, _, archive = built
    (tmp_path / "results" / "tiny").mkdir(parents=True)
    (tmp_path / "results" / "tiny" / "claims.md").write_text("mine")
    with pytest.raises(ArchiveError, match="overwrite"):
        restore_archive(archive, root=tmp_path)
    assert (tmp_path / "results" / "tiny" / "claims.md").read_text() == "mine"


def test_a_non_archive_is_refused_with_a_clear_error(tmp_path):
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        tar.add(REPO / "config.yaml", arcname="config.yaml")
    with pytest.raises(ArchiveError, match=MANIFEST):
        read_manifest(plain)
    result = _archive_cli("restore", str(plain), cwd=tmp_path)
    assert result.returncode == 1 and "error:" in result.stderr


def test_missing_weights_give_an_error_naming_the_way_out(built, tmp_path):
    _, _, archive = built
    restore_archive(archive, root=tmp_path)
    from transient_ridge.checkpoint import checkpoint_path, load_checkpoint

    with pytest.raises(FileNotFoundError, match="without weights"):
        load_checkpoint(checkpoint_path(tmp_path / "results/tiny/runs/M1/checkpoints", 40))


def test_restored_mtimes_keep_order_and_ties_and_beat_the_sources():
    original = {"a": 5, "b": 1, "c": 5, "d": 3}
    new = restored_mtimes(original, now_ns=10**12, newest_source_ns=10**12 + 7)
    assert new["b"] < new["d"] < new["a"] == new["c"]
    assert min(new.values()) > 10**12 + 7
    new = restored_mtimes(original, now_ns=10**12, newest_source_ns=0)
    assert max(new.values()) == 10**12


def test_stores_and_figures_of_the_run_carry_their_rule_and_stage_settings(built):
    _, work, _ = built
    figure = read_provenance(work / "results/tiny/figures/fig1_ood_loss.pdf")
    assert figure == read_provenance(work / "results/tiny/figures/fig1_ood_loss.png")
    assert figure["rule"] == "figures_runs" and figure["wildcards"] == {"exp": "tiny"}
    assert figure["stage_settings_keys"] == ["M_values", "raw", "smoothing_window"]
    train = read_provenance(work / "results/tiny/runs/M1/predictions.zarr")
    assert train["rule"] == "train" and train["wildcards"] == {"exp": "tiny", "run": "M1"}
    assert "training" in train["stage_settings_keys"] and "figures" not in train["stage_settings_keys"]
    assert set(train["versions"]) >= {"torch", "numpy", "xarray", "zarr", "snakemake"}


def test_the_archive_rule_is_scheduled_after_the_experiment_targets(built):
    root, work, _ = built
    config = _tiny_config(root / "tiny.yaml")
    result = _snakemake("-n", "archive_tiny_weights", "--configfile", config, "--directory", str(work), "--snakefile", str(REPO / "Snakefile"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = _job_counts(result.stdout)
    assert counts["archive_weights"] == 1 and "train" not in counts
    assert counts["figures_pca"] == 1  # the figures not yet built come first (fig1 is in this group)
    assert "archives/tiny-with-weights.tar.gz" in result.stdout


@pytest.mark.parametrize("weights", [False, True])
def test_the_runs_of_every_seed_are_archived_with_or_without_their_weights(tmp_path, weights):
    from transient_ridge.archive import create_archive

    for run in ("M4/s1", "M4/s7", "Minf/s1", "Minf/s7"):
        folder = tmp_path / "results/x/runs" / run / "checkpoints"
        folder.mkdir(parents=True)
        (folder / "step_0000010.pt").write_bytes(b"weights")
        (folder / ".snakemake_timestamp").write_text("")
        (tmp_path / "logs/x/train" / run).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "logs/x/train" / f"{run}.log").write_text("trained")
    archive = create_archive("x", tmp_path / "x.tar.gz", root=tmp_path, weights=weights)
    paths = {entry["path"] for entry in read_manifest(archive)["files"]}
    for run in ("M4/s1", "M4/s7", "Minf/s1", "Minf/s7"):
        assert f"logs/x/train/{run}.log" in paths
        assert (f"results/x/runs/{run}/checkpoints/step_0000010.pt" in paths) == weights
        assert (f"results/x/runs/{run}/checkpoints/{NO_WEIGHTS_NOTE}" in paths) == (not weights)


def test_the_archived_config_is_that_of_the_store_written_last(tmp_path, monkeypatch):
    # the task data predates an edit of `llc` after which only the LLC stages reran: the
    # manifest must carry the newer config, or restore reports a difference Snakemake no longer sees
    import xarray as xr

    from transient_ridge.archive import _experiment_config
    from transient_ridge.store import write_dataset

    results = tmp_path / "results" / "x"
    old, new = {"llc": {"epsilon": 1e-3}, "data": {"D": 2}}, {"llc": {"epsilon": "auto"}, "data": {"D": 2}}
    stamps = iter(["2026-11-27T10:00:00Z", "2026-11-27T12:00:00Z", "2026-11-27T11:00:00Z"])
    monkeypatch.setattr("transient_ridge.store.current_stamp", lambda: {"created_utc": next(stamps)})
    for store, config in (
        (results / "data" / "tasks.zarr", old),
        (results / "llc_calibration.zarr", new),  # written last by the clock, not in this order
        (results / "pca.zarr", old),
    ):
        write_dataset(xr.Dataset({"v": ("i", [1.0])}, attrs={"config": json.dumps(config)}), store)
    assert _experiment_config(tmp_path, "x") == new
    assert _experiment_config(tmp_path, "missing") is None


def test_the_archive_rule_records_the_config_snakemake_checked_the_results_against(built):
    root, work, _ = built
    config = root / "tiny.yaml"
    result = _snakemake("-c", "1", "archive_tiny", "--configfile", str(config), "--directory", str(work),
                        "--snakefile", str(REPO / "Snakefile"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = read_manifest(work / "archives" / "tiny.tar.gz")
    recorded = {key: value for key, value in manifest["config"].items() if key != "name"}  # the Snakefile adds name
    assert recorded == yaml.safe_load(config.read_text())["experiments"]["tiny"]
