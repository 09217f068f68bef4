"""Training: exact resume after a stop or a SIGKILL, NaN handling, outputs only on completion."""

import logging
import math
import multiprocessing
import os
import re
import signal
import time

import numpy as np
import pytest
import torch

from transient_ridge.checkpoint import list_checkpoints, load_checkpoint
from transient_ridge.config import ExperimentConfig
from transient_ridge.schedule import checkpoint_steps, weight_steps
from transient_ridge.store import open_dataset
from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
from transient_ridge.train import ProbeInputs, TrainingDivergedError, train_run


def _run(cfg, M, run_dir, **kwargs):
    torch.set_num_threads(1)
    dataset = build_tasks_dataset(cfg)
    train_run(cfg, M, tasks_from_dataset(dataset), ProbeInputs.from_tasks_dataset(dataset, M), run_dir, **kwargs)


def _final_weights(run_dir, step):
    model, _ = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[step])
    return model.state_dict()


def _resumed_from(caplog) -> list[int]:
    """The steps the training log says it resumed from ("resuming from step N")."""
    return [int(m[1]) for r in caplog.records if (m := re.search(r"resuming from step (\d+)", r.getMessage()))]


def _assert_same_run(a, b, cfg):
    for key, value in _final_weights(a, cfg.training.steps).items():
        assert torch.equal(value, _final_weights(b, cfg.training.steps)[key]), key
    pa, pb = open_dataset(a / "predictions.zarr"), open_dataset(b / "predictions.zarr")
    np.testing.assert_array_equal(pa["pred_id"].values, pb["pred_id"].values)
    assert sorted(list_checkpoints(a / "checkpoints")) == sorted(list_checkpoints(b / "checkpoints"))


@pytest.mark.parametrize("M", [4.0, math.inf])
def test_run_writes_outputs_at_every_scheduled_step(tiny_cfg, tmp_path, M):
    _run(tiny_cfg, M, tmp_path)
    steps = checkpoint_steps(40, 10, 5)
    predictions = open_dataset(tmp_path / "predictions.zarr")
    assert predictions["step"].values.tolist() == steps.tolist()
    assert predictions["pred_root"].dims == ("step", "sequence", "token")
    assert float(predictions.attrs["M"]) == M
    assert sorted(list_checkpoints(tmp_path / "checkpoints")) == weight_steps(steps, 2).tolist()
    assert not (tmp_path / ".resume").exists()


def test_resume_after_stop_is_bit_identical(tiny_cfg, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="transient_ridge.train")
    _run(tiny_cfg, 4.0, tmp_path / "straight")
    _run(tiny_cfg, 4.0, tmp_path / "resumed", stop_after=25)
    assert not (tmp_path / "resumed" / "predictions.zarr").exists()
    assert not (tmp_path / "resumed" / "checkpoints").exists()
    assert _resumed_from(caplog) == []
    _run(tiny_cfg, 4.0, tmp_path / "resumed")
    # it continued from the state saved before the stop (resume_every=10), not from step 0
    assert _resumed_from(caplog) == [20]
    _assert_same_run(tmp_path / "straight", tmp_path / "resumed", tiny_cfg)


def _train_forever(block, run_dir):
    cfg = ExperimentConfig.from_dict("tiny", block)
    _run(cfg, 4.0, run_dir)


def test_resume_after_sigkill_is_bit_identical(tiny_block, tmp_path, caplog):
    tiny_block["training"].update(steps=400, resume_every=20)
    tiny_block["checkpoints"].update(linear_interval=50)
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    _run(cfg, 4.0, tmp_path / "straight")
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_train_forever, args=(tiny_block, tmp_path / "killed"))
    process.start()
    state = tmp_path / "killed" / ".resume" / "state.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.exists() and torch.load(state, weights_only=False)["step"] >= 60:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert not (tmp_path / "killed" / "predictions.zarr").exists()
    saved = int(torch.load(state, weights_only=False)["step"])
    caplog.set_level(logging.INFO, logger="transient_ridge.train")
    _run(cfg, 4.0, tmp_path / "killed")
    # it continued from the state the killed process last saved (at step 60 or later), not from step 0
    assert _resumed_from(caplog) == [saved] and 60 <= saved < 400
    _assert_same_run(tmp_path / "straight", tmp_path / "killed", cfg)


def test_resume_state_from_another_config_is_discarded(tiny_block, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="transient_ridge.train")
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    _run(cfg, 4.0, tmp_path / "a", stop_after=25)
    tiny_block["training"]["lr"] = 2e-3
    other = ExperimentConfig.from_dict("tiny", tiny_block)
    _run(other, 4.0, tmp_path / "a")
    assert _resumed_from(caplog) == [] and "was written by another config; starting afresh" in caplog.text
    _run(other, 4.0, tmp_path / "b")
    _assert_same_run(tmp_path / "a", tmp_path / "b", other)


def test_divergence_names_M_and_step_and_leaves_no_outputs(tiny_block, tmp_path):
    tiny_block["training"]["lr"] = 1e30
    tiny_block["training"]["schedule"] = {"kind": "constant"}
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    with pytest.raises(TrainingDivergedError, match=r"M=4 diverged at step \d+"):
        _run(cfg, 4.0, tmp_path)
    assert not (tmp_path / "predictions.zarr").exists()
    assert not (tmp_path / "checkpoints").exists()


def test_a_run_needs_one_seed_per_source(tiny_block, tmp_path):
    from transient_ridge.config import ConfigError

    tiny_block["seeds"]["train"] = [1, 7]
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    with pytest.raises(ConfigError, match=r"seeds.train is a list \[1, 7\]; narrow the config"):
        _run(cfg, 4.0, tmp_path)
    _run(cfg.for_seed(7), 4.0, tmp_path / "s7")
    assert open_dataset(tmp_path / "s7" / "predictions.zarr").attrs["seed"] == 7
