"""training.precision: validated, applied through the TF32 API this torch has, recorded in every output."""

import numpy as np
import pytest
import torch

from transient_ridge.baselines import build_baselines_dataset
from transient_ridge.checkpoint import list_checkpoints, load_checkpoint
from transient_ridge.config import ConfigError, ExperimentConfig, validate_config
from transient_ridge.evaluate import build_outputs_dataset
from transient_ridge.precision import fp32_matmul, precision_settings, tf32_api, training_precision
from transient_ridge.store import open_dataset
from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
from transient_ridge.train import ProbeInputs, train_run

from conftest import SCHEMA


def _train(cfg, M, run_dir):
    torch.set_num_threads(1)
    tasks = build_tasks_dataset(cfg)
    train_run(cfg, M, tasks_from_dataset(tasks), ProbeInputs.from_tasks_dataset(tasks, M), run_dir)
    return tasks


def test_unknown_precision_fails_naming_the_key(tiny_block):
    tiny_block["training"]["precision"] = "fp16"
    with pytest.raises(ConfigError, match=r"training\.precision.*'fp16'.*bf16"):
        ExperimentConfig.from_dict("x", tiny_block)
    with pytest.raises(ConfigError, match=r"experiments\.x\.training\.precision.*fp32"):
        validate_config({"experiments": {"x": tiny_block}}, SCHEMA)


def test_precision_defaults_to_fp32(tiny_cfg):
    assert tiny_cfg.training.precision == "fp32"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_is_recorded_in_checkpoints_and_stores(tiny_block, tmp_path, precision):
    tiny_block["training"]["precision"] = precision
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    tasks = _train(cfg, 4.0, tmp_path)
    for path in list_checkpoints(tmp_path / "checkpoints").values():
        assert load_checkpoint(path)[1]["precision"] == precision
    predictions = open_dataset(tmp_path / "predictions.zarr")
    assert predictions.attrs["precision"] == precision
    outputs = build_outputs_dataset(predictions, tasks, build_baselines_dataset(tasks, chunk_size=2))
    assert outputs.attrs["precision"] == precision


def test_bf16_training_differs_from_fp32_but_stays_close(tiny_block, tmp_path):
    """Autocast is really in effect (weights differ bitwise) and the run is still the same run."""
    finals = {}
    for precision in ("fp32", "bf16"):
        tiny_block["training"]["precision"] = precision
        cfg = ExperimentConfig.from_dict("tiny", tiny_block)
        _train(cfg, 4.0, tmp_path / precision)
        finals[precision] = open_dataset(tmp_path / precision / "predictions.zarr")["pred_ood"].values[-1]
    assert not np.array_equal(finals["fp32"], finals["bf16"])
    scale = np.abs(finals["fp32"]).mean()
    assert np.abs(finals["fp32"] - finals["bf16"]).mean() < 0.1 * scale


def test_tf32_switch_uses_this_torchs_api_and_restores_it():
    before = precision_settings()
    with fp32_matmul(True):
        inside = precision_settings()
        if tf32_api() == "fp32_precision":
            assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        else:
            assert torch.backends.cuda.matmul.allow_tf32 is True
    assert inside != before and precision_settings() == before


def test_bf16_autocast_context_applies_to_matmuls_only_inside():
    with training_precision("bf16", "cpu") as autocast:
        a = torch.randn(4, 4)
        with autocast():
            assert (a @ a).dtype == torch.bfloat16
        assert (a @ a).dtype == torch.float32
    with training_precision("fp32", "cpu") as autocast, autocast():
        assert (a @ a).dtype == torch.float32


def test_precision_curves_compares_along_the_whole_curve(repo_config):
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import precision_curves

    reference = np.array([2.0, 1.0, 0.5, 0.25])
    curve = np.array([9.0, 1.1, 0.5, 0.2])  # step 0 (the shared initial model) is left out
    assert precision_curves.max_relative_difference(curve, reference) == pytest.approx(0.2)
    cfg = precision_curves.run_config("mini", 16.0, 90, "bf16", 1, False, REPO / "config.yaml")
    assert cfg.training.precision == "bf16" and cfg.training.steps == 90 and cfg.data.M == (16.0,)
    assert cfg.seeds.train == ExperimentConfig.from_config(repo_config, "mini").seeds.train + 1
