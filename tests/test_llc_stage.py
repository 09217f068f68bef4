"""The llc stage on a tiny trained run: store layout, gathering across runs, calibration grid."""

import copy
import math

import numpy as np
import pytest
import torch

from conftest import TINY_BLOCK
from transient_ridge.checkpoint import checkpoint_path, load_checkpoint
from transient_ridge.config import ConfigError, ExperimentConfig
from transient_ridge.llc import (
    NO_ESTIMATE,
    build_calibration_dataset,
    build_run_llc_dataset,
    calibration_steps,
    checkpoint_losses,
    choose_epsilon,
    gather_llc_datasets,
    llc_data,
    llc_steps,
    read_estimates,
)
from transient_ridge.predictors import ridge_predict
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


def test_explicit_llc_steps_are_independent_of_the_linear_interval(tiny_block):
    # weights are kept at every 2nd checkpoint of {0, 1, 2, 6, 10, 15, 20, 30, 40}: 0, 2, 10, 20, 40
    tiny_block["llc"].pop("num_checkpoints")
    tiny_block["llc"]["steps"] = [10, 2]  # 2: before checkpoints.linear_interval = 10
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    assert llc_steps(cfg).tolist() == [2, 10, 40]  # sorted, the final step added
    tiny_block["llc"]["steps"] = [6]
    with pytest.raises(ConfigError, match=r"llc.steps: 6 \(nearest with weights: \[2, 10\]\)"):
        llc_steps(ExperimentConfig.from_dict("tiny", tiny_block))
    tiny_block["llc"]["num_checkpoints"] = 2
    with pytest.raises(ConfigError, match="exactly one of `steps`"):
        ExperimentConfig.from_dict("tiny", tiny_block)


def test_run_llc_store_layout(trained):
    cfg, tasks, runs = trained
    ds = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    burnin, draws = cfg.llc.chain_length(1e-3)  # 0.5 and 1 units of 1/(eps*gamma) = 10 steps
    assert (burnin, draws) == (5, 10) and (ds.attrs["num_burnin"], ds.attrs["num_draws"]) == (5, 10)
    assert ds["loss_trace"].dims == ("step", "chain", "draw")
    assert ds["loss_trace"].shape == (len(llc_steps(cfg)), 4, 15)
    for name in ("llc_mean", "llc_sem", "rhat", "half_z", "mala_acceptance", "status", "loss", "ridge_loss",
                 "loss_minus_ridge_sem"):
        assert ds[name].dims == ("step",), name
    assert np.isfinite(ds["llc_mean"]).all() and float(ds["M"]) == 4.0
    np.testing.assert_allclose(ds["llc_sem"], ds["llc_std"] / 2.0)  # 4 healthy chains
    assert ds.attrs["epsilon"] == 1e-3 and ds.attrs["n"] == 64 and ds.attrs["beta"] == pytest.approx(10 / 64)
    assert ds.attrs["burnin_time"] == 0.5 and ds.attrs["draw_time"] == 1.0 and ds.attrs["errors"] == []
    # the status stored is the one the reader derives from the stored diagnostics
    table = read_estimates(ds.expand_dims(M=[4.0]))
    assert [s for s in table.status[0]] == [["sound", "not converged", "unreliable", "failed"][c] for c in ds["status"].values]
    again = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    np.testing.assert_array_equal(ds["loss_trace"].values, again["loss_trace"].values)


def test_checkpoint_losses_match_a_plain_loop(trained):
    cfg, tasks, runs = trained
    model, _ = load_checkpoint(checkpoint_path(runs[4.0], int(cfg.training.steps)))
    x, y = llc_data(cfg, 4.0, tasks)
    got = checkpoint_losses(model, (x, y), cfg.data.noise_variance, chunk=7)
    run, ridge = [], []
    with torch.no_grad():
        pred = model(x, y).double().numpy()
    ridge_pred = ridge_predict(x.double().numpy(), y.double().numpy(), cfg.data.noise_variance)
    for i in range(len(y)):
        run.append(sum((pred[i, k] - float(y[i, k])) ** 2 for k in range(y.shape[1])) / y.shape[1])
        ridge.append(sum((ridge_pred[i, k] - float(y[i, k])) ** 2 for k in range(y.shape[1])) / y.shape[1])
    n = len(run)
    for name, values in (("loss", run), ("ridge_loss", ridge), ("loss_minus_ridge", [a - b for a, b in zip(run, ridge)])):
        mean = sum(values) / n
        sem = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
        assert got[name] == pytest.approx(mean, rel=1e-6) and got[f"{name}_sem"] == pytest.approx(sem, rel=1e-6)
    with torch.no_grad():
        assert got["loss"] == pytest.approx(float(torch.nn.functional.mse_loss(model(x, y), y)), rel=1e-5)


def test_gather_outer_joins_steps(trained):
    cfg, tasks, runs = trained
    a = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    b = build_run_llc_dataset(cfg, math.inf, runs[math.inf], tasks).isel(step=[-1])
    gathered = gather_llc_datasets([b, a])
    assert gathered["llc_mean"].dims == ("M", "step")
    assert gathered["M"].values.tolist() == [4.0, math.inf]
    assert np.isnan(gathered["llc_mean"].sel(M=math.inf).values[0])
    assert int(gathered["status"].sel(M=math.inf).values[0]) == NO_ESTIMATE and gathered["status"].dtype == np.int8
    assert not read_estimates(gathered).recorded[1, 0]
    np.testing.assert_array_equal(gathered["llc_mean"].sel(M=4.0).values, a["llc_mean"].values)


def test_gather_with_a_seed_axis_stacks_each_seeds_runs(trained):
    cfg, tasks, runs = trained
    a = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    b = build_run_llc_dataset(cfg, math.inf, runs[math.inf], tasks)
    per_run = []
    for train_seed, sgld_seed, shift in ((7, 9, 1.0), (1, 4, 0.0)):
        for ds in (a, b):
            one = ds.copy(deep=True)
            one["llc_mean"] = one["llc_mean"] + shift  # tell the seeds apart
            one.attrs.update(train_seed=train_seed, seed=sgld_seed)
            per_run.append(one)
    gathered = gather_llc_datasets(per_run, seed_axis=True)
    assert gathered["llc_mean"].dims == ("M", "seed", "step") and gathered["seed"].values.tolist() == [1, 7]
    assert gathered["sgld_seed"].values.tolist() == [4, 9] and "train_seed" not in gathered.attrs
    np.testing.assert_array_equal(gathered["llc_mean"].sel(M=4.0, seed=7).values, a["llc_mean"].values + 1.0)
    np.testing.assert_array_equal(gathered["llc_mean"].sel(M=math.inf, seed=1).values, b["llc_mean"].values)
    without = [ds.copy() for ds in per_run]
    del without[0].attrs["train_seed"]
    with pytest.raises(ValueError, match="no 'train_seed' attribute"):
        gather_llc_datasets(without, seed_axis=True)


def test_calibration_sweeps_early_middle_final_and_chooses(trained):
    cfg, tasks, runs = trained
    block = copy.deepcopy(TINY_BLOCK)
    block["llc"]["epsilon"] = "auto"
    block["llc"]["calibration"] = {"M": [4, "inf"], "epsilon": [3e-4, 1e-3, 1e9], "gamma": [100.0], "draw_time": 0.8}
    auto = ExperimentConfig.from_dict("tiny", block)
    ds = build_calibration_dataset(auto, runs, tasks)
    steps = llc_steps(auto)
    assert calibration_steps(auto).tolist() == sorted({int(steps[0]), int(steps[len(steps) // 2]), int(steps[-1])})
    assert ds["loss_trace"].dims == ("M", "step", "epsilon", "gamma", "chain", "draw")
    # chains of equal SGLD time: more steps at smaller epsilon, the shorter traces NaN-padded
    assert ds["num_burnin"].sel(gamma=100.0).values.tolist() == [17, 5, 1]
    assert ds["num_draws"].sel(gamma=100.0).values.tolist() == [27, 8, 1]
    assert ds.sizes["draw"] == 17 + 27 and ds.attrs["draw_time"] == 0.8
    short = ds["loss_trace"].sel(epsilon=1e-3, gamma=100.0)
    assert np.isfinite(short.isel(draw=slice(0, 13))).all() and np.isnan(short.isel(draw=slice(13, None))).all()
    assert ds["accepted"].dims == ("M", "step", "epsilon") and ds["eligible"].dims == ("M", "step")
    # ε = 1e9 diverges everywhere: a finding stored as NaN with every chain failed, never a crash
    huge = ds.sel(epsilon=1e9, gamma=100.0)
    assert np.isnan(huge["llc_mean"]).all() and (huge["failed_chains"] == auto.llc.num_chains).all()
    assert not ds["healthy"].sel(epsilon=1e9).any()
    # the stored choice is what the rule gives on the stored evidence
    at = ds.sel(gamma=100.0)
    table = read_estimates(at, ("M", "step", "epsilon"))
    points = (-1, ds.sizes["epsilon"])
    final = np.broadcast_to(at["step"].values == auto.training.steps, (2, ds.sizes["step"])).reshape(-1)
    again = choose_epsilon(ds["epsilon"].values, table["llc_mean"].reshape(points), table["llc_sem"].reshape(points),
                           table.status.reshape(points), final)
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
        assert float(sweep["init_loss"].sel(M=4.0, step=step).isel(epsilon=0, gamma=0)) == pytest.approx(
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
    from transient_ridge.llc import _stage as stage

    cfg, tasks, runs = trained
    first = int(llc_steps(cfg)[0])
    real = stage.fit_checkpoints

    def diverge_at_first(models, data, settings, *, seeds, epsilon, labels, **kwargs):
        """The first checkpoint fitted alone at an ε where every chain blows up; the others together, as usual."""
        records = {}
        rest = [i for i, seed in enumerate(seeds) if seed != cfg.seeds.sgld + first]
        if len(rest) < len(seeds):
            i = seeds.index(cfg.seeds.sgld + first)
            records[i] = real([models[i]], data, settings, seeds=[seeds[i]], epsilon=1e9, labels=[labels[i]], **kwargs)[0]
        if rest:
            fitted = real([models[i] for i in rest], data, settings, seeds=[seeds[i] for i in rest], epsilon=epsilon,
                          labels=[labels[i] for i in rest], **kwargs)
            records.update(zip(rest, fitted))
        return [records[i] for i in range(len(seeds))]

    monkeypatch.setattr(stage, "fit_checkpoints", diverge_at_first)
    with caplog.at_level("WARNING", logger="transient_ridge.llc"):
        ds = stage.build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    assert np.isnan(float(ds["llc_mean"].sel(step=first)))
    assert int(ds["failed_chains"].sel(step=first)) == cfg.llc.num_chains
    assert (ds["failed_chains"].drop_sel(step=first) == 0).all() and np.isfinite(ds["llc_mean"].drop_sel(step=first)).all()
    assert np.isfinite(ds["trace_peak"].drop_sel(step=first)).all()
    assert ds.attrs["errors"] and "all 4 SGLD chains diverged" in ds.attrs["errors"][0]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"step {first}: no LLC estimate (all 4 SGLD chains diverged" in w and "epsilon=1e+09" in w for w in warnings)


def test_spiked_estimate_is_logged_as_a_warning(trained, monkeypatch, caplog):
    from transient_ridge.llc import _record

    cfg, tasks, runs = trained
    real = _record.fit_together
    first = cfg.seeds.sgld + int(llc_steps(cfg)[0])

    def spike_at_first(estimators, *args, **kwargs):
        fitted = real(estimators, *args, **kwargs)
        for estimate in fitted:
            if estimate.seed == first:
                estimate.loss_trace_[0, 3] = 25 * estimate.init_loss_  # 25x the start loss at the first step only
        return fitted

    monkeypatch.setattr(_record, "fit_together", spike_at_first)
    with caplog.at_level("WARNING", logger="transient_ridge.llc"):
        ds = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    spiked = [r for r in caplog.records if r.levelname == "WARNING" and "peaked" in r.getMessage()]
    assert len(spiked) == 1 and "25.0x" in spiked[0].getMessage() and f"step {llc_steps(cfg)[0]}" in spiked[0].getMessage()
    assert read_estimates(ds.expand_dims(M=[4.0])).status[0, 0] == "unreliable"


def test_estimates_already_read_pass_through_the_reader_once_read():
    from llc_stores import llc_store

    table = read_estimates(llc_store([[1.0, 2.0]], M=[4.0], steps=[10, 20]))
    assert read_estimates(table) is table  # claims read a store once and hand the table on
    with pytest.raises(ValueError, match="read over"):
        read_estimates(table, ("M", "step", "epsilon"))


def test_llc_run_reuses_the_calibrations_own_fits_and_only_those(trained):
    """Where the calibration already made the very fit llc_run would make, the record is taken, not refitted."""
    cfg, tasks, runs = trained
    first, final = int(llc_steps(cfg)[0]), int(cfg.training.steps)
    block = copy.deepcopy(TINY_BLOCK)
    block["llc"]["calibration"] = {"M": [4], "epsilon": [cfg.llc.epsilon / 3, cfg.llc.epsilon], "gamma": [cfg.llc.gamma],
                                   "steps": [final]}
    calibrated = ExperimentConfig.from_dict("tiny", block)
    sweep = build_calibration_dataset(calibrated, {4.0: runs[4.0]}, tasks)
    fresh = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks)
    reused = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks, calibration=sweep)
    assert reused.attrs["reused_from_calibration"] == [final] and fresh.attrs["reused_from_calibration"] == []
    for name in ("llc_mean", "llc_sem", "rhat", "half_z", "init_loss", "llc_chain", "status", "mala_acceptance"):
        np.testing.assert_array_equal(reused[name].values, fresh[name].values, err_msg=name)
    np.testing.assert_array_equal(reused["loss_trace"].values, fresh["loss_trace"].values)
    assert first != final and float(reused["elapsed_s"].sel(step=first)) > 0

    # another run (M), another ε, or other chain settings: nothing to reuse
    assert build_run_llc_dataset(cfg, math.inf, runs[math.inf], tasks, calibration=sweep).attrs["reused_from_calibration"] == []
    other_eps = build_run_llc_dataset(cfg, 4.0, runs[4.0], tasks, epsilon=cfg.llc.epsilon / 3, calibration=sweep)
    assert other_eps.attrs["reused_from_calibration"] == [final]  # the grid's other value is a fit it made too
    longer = copy.deepcopy(TINY_BLOCK)
    longer["llc"]["draw_time"] = 2 * TINY_BLOCK["llc"]["draw_time"]
    longer_cfg = ExperimentConfig.from_dict("tiny", longer)
    assert build_run_llc_dataset(longer_cfg, 4.0, runs[4.0], tasks, calibration=sweep).attrs["reused_from_calibration"] == []
    seeded = copy.deepcopy(TINY_BLOCK)
    seeded["seeds"]["sgld"] = TINY_BLOCK["seeds"]["sgld"] + 1
    seeded_cfg = ExperimentConfig.from_dict("tiny", seeded)
    assert build_run_llc_dataset(seeded_cfg, 4.0, runs[4.0], tasks, calibration=sweep).attrs["reused_from_calibration"] == []


def test_calibration_points_combine_in_any_order_and_must_all_be_there(trained):
    from transient_ridge.llc import build_calibration_point, combine_calibration_points

    cfg, tasks, runs = trained
    block = copy.deepcopy(TINY_BLOCK)
    block["llc"]["epsilon"] = "auto"
    block["llc"]["calibration"] = {"M": [4, "inf"], "epsilon": [3e-4, 1e-3], "gamma": [100.0]}
    auto = ExperimentConfig.from_dict("tiny", block)
    steps = [int(s) for s in calibration_steps(auto)]
    points = [build_calibration_point(auto, M, step, runs[M], tasks) for M in (math.inf, 4.0) for step in reversed(steps)]
    combined = combine_calibration_points(auto, points)
    whole = build_calibration_dataset(auto, runs, tasks)
    assert combined["M"].values.tolist() == [4.0, math.inf] and combined["step"].values.tolist() == steps
    for name in ("llc_mean", "status", "healthy", "accepted", "eligible", "chosen_epsilon", "num_burnin", "loss_trace"):
        np.testing.assert_array_equal(combined[name].values, whole[name].values, err_msg=name)
    assert combined.attrs["choice_reason"] == whole.attrs["choice_reason"]
    with pytest.raises(ValueError, match=r"missing \['M=inf step"):
        combine_calibration_points(auto, points[1:])
