"""The llc stage on a tiny trained run: store layout, gathering across runs, calibration grid."""

import math

import numpy as np
import pytest
import torch

from transient_ridge.llc_stage import build_calibration_dataset, build_run_llc_dataset, gather_llc_datasets, llc_steps
from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
from transient_ridge.train import ProbeInputs, train_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import TINY_BLOCK
    from transient_ridge.config import ExperimentConfig

    cfg = ExperimentConfig.from_dict("tiny", TINY_BLOCK)
    torch.set_num_threads(1)
    tasks_ds = build_tasks_dataset(cfg)
    tasks = tasks_from_dataset(tasks_ds)
    runs = {}
    for M in (4.0, math.inf):
        run_dir = tmp_path_factory.mktemp(f"run{M}")
        train_run(cfg, M, tasks, ProbeInputs.from_tasks_dataset(tasks_ds, M), run_dir)
        runs[M] = run_dir / "checkpoints"
    return cfg, tasks, runs


def test_llc_steps_skip_early_training_and_end_at_final(tiny_cfg):
    steps = llc_steps(tiny_cfg)
    assert steps[0] >= tiny_cfg.checkpoints.linear_interval and steps[-1] == tiny_cfg.training.steps and len(steps) <= tiny_cfg.llc.num_checkpoints


def test_run_llc_store_layout(trained):
    cfg, tasks, runs = trained
    ds = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    assert ds["loss_trace"].dims == ("step", "chain", "draw")
    assert ds["loss_trace"].shape == (len(llc_steps(cfg)), 2, 15)
    assert np.isfinite(ds["llc_mean"]).all() and float(ds["M"]) == 4.0
    assert ds.attrs["epsilon"] == 1e-3 and ds.attrs["n"] == 64 and ds.attrs["beta"] == pytest.approx(10 / 64)
    again = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    np.testing.assert_array_equal(ds["loss_trace"].values, again["loss_trace"].values)


def test_gather_outer_joins_steps(trained):
    cfg, tasks, runs = trained
    a = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    b = build_run_llc_dataset(cfg, math.inf, runs[math.inf], tasks).isel(step=[-1])
    gathered = gather_llc_datasets([b, a])
    assert gathered["llc_mean"].dims == ("M", "step")
    assert gathered["M"].values.tolist() == [4.0, math.inf]
    assert np.isnan(gathered["llc_mean"].sel(M=math.inf).values[0])
    np.testing.assert_array_equal(gathered["llc_mean"].sel(M=4.0).values, a["llc_mean"].values)


def test_calibration_grid(trained):
    cfg, tasks, runs = trained
    ds = build_calibration_dataset(cfg, {4.0: runs[4.0]}, tasks)
    assert ds["loss_trace"].dims == ("M", "epsilon", "gamma", "chain", "draw")
    assert np.isfinite(ds["llc_mean"]).all()


def test_calibration_at_an_earlier_step_uses_that_checkpoint(trained):
    """``step`` picks the checkpoint: its initial loss is the one the run-LLC stage sees there."""
    cfg, tasks, runs = trained
    first, final = int(llc_steps(cfg)[0]), int(cfg.training.steps)
    assert first < final
    early = build_calibration_dataset(cfg, {4.0: runs[4.0]}, tasks, step=first)
    default = build_calibration_dataset(cfg, {4.0: runs[4.0]}, tasks)
    per_step = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    assert early.attrs["step"] == first and default.attrs["step"] == final
    assert float(early["init_loss"].sel(M=4.0)) == pytest.approx(float(per_step["init_loss"].sel(step=first)))
    assert float(default["init_loss"].sel(M=4.0)) == pytest.approx(float(per_step["init_loss"].sel(step=final)))


def test_spiked_estimate_is_logged_as_a_warning(trained, monkeypatch, caplog):
    import types

    import transient_ridge.llc_stage as stage

    cfg, tasks, runs = trained
    n_trace = cfg.llc.num_burnin + cfg.llc.num_draws

    def fake_estimate(model, data, settings, *, seed, **_):
        trace = np.full((settings.num_chains, n_trace), 0.2)
        if seed == cfg.seeds.sgld + int(llc_steps(cfg)[0]):
            trace[0, 3] = 5.0  # 25x the start loss at the first step only
        return types.SimpleNamespace(
            llc_mean_=1.0, llc_std_=0.1, llc_sem_=0.05, init_loss_=0.2, llc_per_chain_=np.ones(settings.num_chains),
            loss_trace_=trace, failed_chains_=np.zeros(settings.num_chains, bool), elapsed_s_=0.0,
        )

    monkeypatch.setattr(stage, "estimate_checkpoint_llc", fake_estimate)
    with caplog.at_level("WARNING", logger="transient_ridge.llc_stage"):
        stage.build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    spiked = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(spiked) == 1 and "25.0x" in spiked[0].getMessage() and f"step {llc_steps(cfg)[0]}" in spiked[0].getMessage()
