"""Fault battery, running workflow: SIGKILL during train, a calibration point, llc_run and a figure
job, then recovery with ``--unlock``; a truncated zarr store read by the next rule; NaN in
training; missing or damaged checkpoint files. docs/workflow.md has the table.

One tiny experiment (M = 4 and ∞, 2 000 training steps so that a training job lives long
enough to be killed) is built once without faults as the reference. The killed build must end
with the same outputs: stores, weights, claims and figure pixels (tests/same_outputs.py).
"""

import copy
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, TINY_BLOCK
from same_outputs import assert_same_outputs
from test_workflow import SNAKEMAKE
from transient_ridge.checkpoint import CheckpointMismatchError, checkpoint_path, list_checkpoints, load_checkpoint
from transient_ridge.config import ExperimentConfig
from transient_ridge.store import StoreError, open_dataset, write_dataset
from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
from transient_ridge.train import ProbeInputs, TrainingDivergedError, train_run

TARGETS = ["results/tiny/claims.md", "results/tiny/figures/fig_llc_over_time.png"]
KILL_AFTER_STEP = 300


def _block():
    block = copy.deepcopy(TINY_BLOCK)
    block["data"]["M"] = [4, "inf"]
    block["training"].update(steps=2000, resume_every=100, log_every=500)
    block["checkpoints"].update(linear_interval=500)
    return block


def _common(workdir, config):
    return ["--configfile", str(config), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]


def _run(*args, workdir, config, timeout=3600):
    return subprocess.run([SNAKEMAKE, *args, *_common(workdir, config)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The reference build and its config."""
    root = tmp_path_factory.mktemp("faults")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({"experiments": {"tiny": _block()}}))
    result = _run("-c", "2", *TARGETS, workdir=root / "reference", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "reference", config


# ---- SIGKILL, then --unlock --------------------------------------------------------------


def _processes_under(workdir: Path) -> list[int]:
    """PIDs of processes whose command line mentions ``workdir`` (Snakemake and its jobs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(workdir) in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _job_running(workdir: Path, script: str) -> bool:
    """Whether a job running the workflow script ``script`` (e.g. ``train.py``) is alive."""
    for pid in _processes_under(workdir):
        try:
            if f".{script}" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


def _resume_step(run_dir: Path) -> int:
    try:
        return int(torch.load(run_dir / ".resume" / "state.pt", map_location="cpu", weights_only=False)["step"])
    except (FileNotFoundError, EOFError, RuntimeError, KeyError, OSError):
        return -1


def _kill_when(ready, targets, workdir, config, what):
    """Start Snakemake on ``targets``, SIGKILL it and its jobs once ``ready()``; as a crashed machine would."""
    process = subprocess.Popen(
        [SNAKEMAKE, "-c", "2", "--rerun-incomplete", *targets, *_common(workdir, config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 3600
    try:
        while not ready():
            assert process.poll() is None, f"Snakemake ended (rc {process.returncode}) before {what} was running"
            assert time.time() < deadline, f"{what} did not start within an hour"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for pid in _processes_under(workdir):  # a job in its own process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _unlock(workdir, config):
    result = _run("--unlock", workdir=workdir, config=config)
    assert result.returncode == 0, result.stderr[-3000:]


def test_sigkill_during_train_calibration_llc_and_a_figure_then_unlock_gives_the_same_outputs(built, tmp_path):
    reference, config = built
    work = tmp_path / "killed"
    results = work / "results" / "tiny"

    # 1. train: killed once its resume state has passed a step
    _kill_when(lambda: _resume_step(results / "runs" / "M4") >= KILL_AFTER_STEP,
               ["results/tiny/runs/M4/predictions.zarr"], work, config, "train M=4")
    assert not (results / "runs" / "M4" / "predictions.zarr").exists()
    assert not (results / "runs" / "M4" / "checkpoints").exists()
    locked = _run("-c", "2", *TARGETS, workdir=work, config=config)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr  # Snakemake says so itself
    _unlock(work, config)

    # 2. a calibration point, whose job makes the fits (the rerun first finishes train M=4 from its resume state)
    _kill_when(lambda: _job_running(work, "llc_calibration_point.py"), ["results/tiny/llc_calibration.zarr"], work, config,
               "llc_calibration_point")
    resumed = re.search(r"resuming from step (\d+)", (work / "logs/tiny/train/M4.log").read_text())
    assert resumed and int(resumed.group(1)) >= KILL_AFTER_STEP
    assert not (results / "llc_calibration.zarr").exists()
    _unlock(work, config)

    # 3. llc_run
    _kill_when(lambda: _job_running(work, "llc_run.py"), ["results/tiny/runs/M4/llc.zarr"], work, config, "llc_run M=4")
    assert not (results / "runs" / "M4" / "llc.zarr").exists()
    _unlock(work, config)

    # 4. a figure job
    _kill_when(lambda: _job_running(work, "plot_figure.py"), TARGETS[1:], work, config, "fig_llc_over_time")
    assert not (results / "figures" / "fig_llc_over_time.png").exists()
    _unlock(work, config)

    # 5. the same command again finishes, and nothing half-written is left
    result = _run("-c", "2", "--rerun-incomplete", *TARGETS, workdir=work, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_outputs(reference, work, "tiny")
    leftovers = [p for p in results.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial") or p.name == ".resume"]
    assert leftovers == []


def test_sigkill_during_a_training_group_then_unlock_resumes_every_member_exactly(tmp_path):
    """training.group_size 2: M = 4 (the calibration run) leads the group [M4, Minf]. Killed while the
    leader's job trains both, the rerun resumes both members from their own states and ends as an
    unkilled grouped build, weight for weight."""
    block = _block()
    block["training"]["group_size"] = 2
    config = tmp_path / "grouped.yaml"
    config.write_text(yaml.safe_dump({"experiments": {"tiny": block}}))
    targets = [f"results/tiny/runs/{run}/predictions.zarr" for run in ("M4", "Minf")]
    reference = tmp_path / "reference"
    result = _run("-c", "2", *targets, workdir=reference, config=config)
    assert result.returncode == 0, result.stderr[-3000:]

    work = tmp_path / "killed"
    runs = work / "results" / "tiny" / "runs"
    _kill_when(lambda: _resume_step(runs / "Minf") >= KILL_AFTER_STEP, targets, work, config, "train M=4 with M=inf")
    assert not any((runs / run / name).exists() for run in ("M4", "Minf") for name in ("predictions.zarr", "checkpoints"))
    _unlock(work, config)
    result = _run("-c", "2", "--rerun-incomplete", *targets, workdir=work, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / "logs/tiny/train/M4.log").read_text()
    for label in ("M=4", "M=inf"):
        resumed = re.search(rf"{label}: resuming from step (\d+)", log)
        assert resumed and int(resumed.group(1)) >= KILL_AFTER_STEP, label
    assert "trained by the train job of M4" in (work / "logs/tiny/train/Minf.log").read_text()
    for run in ("M4", "Minf"):
        done, killed = reference / "results/tiny/runs" / run, runs / run
        assert sorted(list_checkpoints(done / "checkpoints")) == sorted(list_checkpoints(killed / "checkpoints"))
        for step, path in list_checkpoints(done / "checkpoints").items():
            expected = load_checkpoint(path)[0].state_dict()
            for name, value in load_checkpoint(list_checkpoints(killed / "checkpoints")[step])[0].state_dict().items():
                assert torch.equal(value, expected[name]), (run, step, name)
        for name in ("pred_root", "pred_ood", "pred_id"):
            assert (open_dataset(done / "predictions.zarr")[name].values == open_dataset(killed / "predictions.zarr")[name].values).all()
        assert not (killed / ".resume").exists()


# ---- damaged inputs read by the next rule ------------------------------------------------


def _copy(reference: Path, tmp_path: Path) -> Path:
    work = tmp_path / "copy"
    shutil.copytree(reference, work, symlinks=True)  # copy2 keeps the mtimes: nothing looks outdated
    return work


def test_a_truncated_zarr_store_stops_the_next_rule_naming_the_store(built, tmp_path):
    reference, config = built
    work = _copy(reference, tmp_path)
    store = work / "results/tiny/runs/M4/outputs.zarr"
    chunk = next(p for p in sorted((store / "pred_root").rglob("*")) if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    result = _run("-c", "1", "results/tiny/pca.zarr", "--forcerun", "pca", workdir=work, config=config)
    assert result.returncode != 0
    message = [line for line in (work / "logs/tiny/pca.log").read_text().splitlines() if "StoreError: " in line][-1]
    assert "results/tiny/runs/M4/outputs.zarr: cannot read this zarr store" in message
    assert "rm -r results/tiny/runs/M4/outputs.zarr" in message
    assert not (work / "results/tiny/pca.zarr").exists()  # nothing half-written under the final name
    assert not list((work / "results/tiny").glob(".pca.zarr.tmp-*"))


def test_a_truncated_store_metadata_file_is_named(tmp_path):
    write_dataset(__import__("xarray").Dataset({"a": ("x", [1.0, 2.0])}), tmp_path / "s.zarr")
    metadata = tmp_path / "s.zarr" / "zarr.json"
    metadata.write_text(metadata.read_text()[:40])
    with pytest.raises(StoreError, match=r"s\.zarr: cannot read this zarr store \(.*\); it is truncated") as info:
        open_dataset(tmp_path / "s.zarr")
    assert "\n" not in str(info.value)


def test_a_missing_checkpoint_file_is_named_with_the_way_out(built, tmp_path):
    reference, _ = built
    folder = tmp_path / "checkpoints"
    shutil.copytree(reference / "results/tiny/runs/M4/checkpoints", folder)
    missing = checkpoint_path(folder, max(list_checkpoints(folder)))
    missing.unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_checkpoint(missing)
    message = str(info.value)
    assert "\n" not in message and str(missing) in message and f"--forcerun {folder}" in message


def test_a_truncated_checkpoint_file_is_named_with_the_way_out(built, tmp_path):
    reference, _ = built
    folder = tmp_path / "checkpoints"
    shutil.copytree(reference / "results/tiny/runs/M4/checkpoints", folder)
    damaged = checkpoint_path(folder, max(list_checkpoints(folder)))
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(damaged)
    message = str(info.value)
    assert "\n" not in message and "cannot be read as a checkpoint" in message and f"--forcerun {folder}" in message


def test_nan_in_training_stops_the_job_naming_M_and_step_and_keeps_the_last_good_state(tiny_block, tmp_path):
    tiny_block["training"].update(lr=1e30, steps=40, resume_every=5)
    tiny_block["training"]["schedule"] = {"kind": "constant"}
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    dataset = build_tasks_dataset(cfg)
    torch.set_num_threads(1)
    with pytest.raises(TrainingDivergedError) as info:
        train_run(cfg, 4.0, tasks_from_dataset(dataset), ProbeInputs.from_tasks_dataset(dataset, 4.0), tmp_path)
    message = str(info.value)
    assert "\n" not in message and re.search(r"training M=4 diverged at step \d+: loss=(nan|inf)", message)
    assert "Lower training.lr (now 1e+30)" in message
    assert not (tmp_path / "predictions.zarr").exists() and not (tmp_path / "checkpoints").exists()
    assert (tmp_path / ".resume" / "state.pt").exists()  # the last good state is kept, as the message says
