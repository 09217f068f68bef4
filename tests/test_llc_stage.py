"""The llc stage on a tiny trained run: store layout, gathering across runs, calibration grid."""

import copy
import math

import numpy as np
import pytest
import torch

from conftest import TINY_BLOCK
from transient_ridge.config import ExperimentConfig
from transient_ridge.llc_calibration import choose_epsilon
from transient_ridge.llc_stage import (
    build_calibration_dataset,
    build_run_llc_dataset,
    calibration_steps,
    gather_llc_datasets,
    llc_steps,
)
from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
from transient_ridge.train import ProbeInputs, train_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
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


def test_calibration_sweeps_early_middle_final_and_chooses(trained):
    cfg, tasks, runs = trained
    block = copy.deepcopy(TINY_BLOCK)
    block["llc"]["epsilon"] = "auto"
    block["llc"]["calibration"] = {"M": [4, "inf"], "epsilon": [1e-4, 1e-3, 1e9], "gamma": [100.0], "num_draws": 8}
    auto = ExperimentConfig.from_dict("tiny", block)
    ds = build_calibration_dataset(auto, runs, tasks)
    steps = llc_steps(auto)
    assert calibration_steps(auto).tolist() == sorted({int(steps[0]), int(steps[len(steps) // 2]), int(steps[-1])})
    assert ds["loss_trace"].dims == ("M", "step", "epsilon", "gamma", "chain", "draw")
    assert ds["loss_trace"].shape[-1] == auto.llc.num_burnin + 8 and ds.attrs["num_draws"] == 8
    assert ds["accepted"].dims == ("M", "step", "epsilon")
    # ε = 1e9 diverges everywhere: a finding stored as NaN with every chain failed, never a crash
    huge = ds.sel(epsilon=1e9, gamma=100.0)
    assert np.isnan(huge["llc_mean"]).all() and (huge["failed_chains"] == auto.llc.num_chains).all()
    assert not ds["healthy"].sel(epsilon=1e9).any()
    # the stored choice is what the rule gives on the stored evidence
    at = ds.sel(gamma=100.0)
    points = (-1, ds.sizes["epsilon"])
    again = choose_epsilon(
        ds["epsilon"].values, at["llc_mean"].values.reshape(points), at["llc_sem"].values.reshape(points),
        at["failed_chains"].values.reshape(points), at["trace_peak"].values.reshape(points),
    )
    assert float(ds["chosen_epsilon"]) == again.epsilon and ds.attrs["rule_satisfied"] == int(again.rule_satisfied)
    assert float(ds["chosen_epsilon"]) < 1e9


def test_calibration_at_an_earlier_step_uses_that_checkpoint(trained):
    """``steps`` picks the checkpoints: the initial loss is the one the run-LLC stage sees there."""
    cfg, tasks, runs = trained
    first, final = int(llc_steps(cfg)[0]), int(cfg.training.steps)
    assert first < final
    sweep = build_calibration_dataset(cfg, {4.0: runs[4.0]}, tasks, steps=[first, final])
    per_step = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    for step in (first, final):
        assert float(sweep["init_loss"].sel(M=4.0, step=step)) == pytest.approx(
            float(per_step["init_loss"].sel(step=step))
        )
    # same seed, same settings: the calibration estimate at the run's epsilon is the run's estimate
    np.testing.assert_allclose(
        sweep["llc_mean"].sel(M=4.0, epsilon=cfg.llc.epsilon, gamma=cfg.llc.gamma).values,
        per_step["llc_mean"].sel(step=[first, final]).values,
    )


def test_auto_epsilon_needs_the_calibrated_value(trained):
    cfg, tasks, runs = trained
    block = copy.deepcopy(TINY_BLOCK)
    block["llc"]["epsilon"] = "auto"
    auto = ExperimentConfig.from_dict("tiny", block)
    with pytest.raises(ValueError, match="auto"):
        build_run_llc_dataset(auto, 4.0, runs[4.0], tasks)
    ds = build_run_llc_dataset(auto, 4.0, runs[4.0], tasks, epsilon=1e-3, epsilon_source="calibration (x)")
    explicit = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    np.testing.assert_array_equal(ds["llc_mean"].values, explicit["llc_mean"].values)
    assert ds.attrs["epsilon"] == 1e-3 and ds.attrs["epsilon_source"] == "calibration (x)"


def test_failed_estimate_is_stored_as_nan_with_health_fields(trained, monkeypatch, caplog):
    import transient_ridge.llc_stage as stage

    cfg, tasks, runs = trained
    first = int(llc_steps(cfg)[0])
    real = stage.estimate_checkpoint_llc

    def diverge_at_first(model, data, settings, *, seed, **kwargs):
        if seed == cfg.seeds.sgld + first:
            kwargs["epsilon"] = 1e9  # every chain blows up
        return real(model, data, settings, seed=seed, **kwargs)

    monkeypatch.setattr(stage, "estimate_checkpoint_llc", diverge_at_first)
    with caplog.at_level("WARNING", logger="transient_ridge.llc_stage"):
        ds = stage.build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    assert np.isnan(float(ds["llc_mean"].sel(step=first)))
    assert int(ds["failed_chains"].sel(step=first)) == cfg.llc.num_chains
    assert (ds["failed_chains"].drop_sel(step=first) == 0).all() and np.isfinite(ds["llc_mean"].drop_sel(step=first)).all()
    assert np.isfinite(ds["trace_peak"].drop_sel(step=first)).all()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"step {first}: all {cfg.llc.num_chains} SGLD chains diverged" in w and "epsilon=1e+09" in w for w in warnings)


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
