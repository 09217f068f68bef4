"""Faults of the LLC stage: each is stored as a failed estimate, never a crash, and never repeated.

Checkpoints are written straight from an initialised model (no training): the
faults are about the stage's bookkeeping, not about the weights.
"""

import copy
import math

import numpy as np
import pytest
import torch

from conftest import TINY_BLOCK
from transient_ridge.checkpoint import checkpoint_path, save_checkpoint
from transient_ridge.config import ExperimentConfig
from transient_ridge.llc import (
    FAILED,
    SGLDLearningCoefficient,
    build_calibration_dataset,
    calibration_steps,
    build_run_llc_dataset,
    calibration_steps,
    fit_checkpoint,
    llc_data,
    llc_steps,
    read_estimates,
)
from transient_ridge.store import open_dataset, write_dataset
from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
from transient_ridge.train import init_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def auto_config(**calibration) -> ExperimentConfig:
    block = copy.deepcopy(TINY_BLOCK)
    block["llc"]["epsilon"] = "auto"
    block["llc"]["calibration"] = {"M": [4], "epsilon": [3e-4, 1e-3], "gamma": [100.0], **calibration}
    return ExperimentConfig.from_dict("tiny", block)


def write_checkpoints(cfg: ExperimentConfig, directory, *, poison: bool = False) -> None:
    """Checkpoints of an initialised M = 4 model at every LLC and calibration step (NaN weights if ``poison``)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = init_model(cfg, 4.0)
    if poison:
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
    for step in sorted({*llc_steps(cfg).tolist(), *calibration_steps(cfg).tolist()}):
        save_checkpoint(checkpoint_path(directory, step), model, step=step, M=4.0, experiment_config=cfg.to_json())


@pytest.fixture(scope="module")
def tasks():
    return tasks_from_dataset(build_tasks_dataset(ExperimentConfig.from_dict("tiny", TINY_BLOCK)))


def test_nonfinite_init_loss_recorded_as_failed(tmp_path, tasks, caplog):
    cfg = ExperimentConfig.from_dict("tiny", TINY_BLOCK)
    model = init_model(cfg, 4.0)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))  # ℓ_n(w*) is NaN
    x, y = llc_data(cfg, 4.0, tasks)
    # the estimator: raises by default, records the failure with raise_on_failure=False
    settings = dict(epsilon=1e-3, gamma=100.0, nbeta=10.0, num_chains=4, num_burnin=3, num_draws=4, batch_size=8)
    with pytest.raises(ValueError, match="finite loss at w"):
        SGLDLearningCoefficient(**settings).fit(model, torch.nn.functional.mse_loss, (x, y), y)
    est = SGLDLearningCoefficient(**settings, raise_on_failure=False).fit(model, torch.nn.functional.mse_loss, (x, y), y)
    assert math.isnan(est.llc_mean_) and est.failed_chains_.all() and "finite loss at w" in est.failure_
    assert est.loss_trace_.shape == (4, 7) and np.isnan(est.loss_trace_).all()
    # the stage: a run whose checkpoints have NaN weights gets failed records, a WARNING, no exception
    write_checkpoints(cfg, tmp_path / "M4", poison=True)
    with caplog.at_level("WARNING"):
        ds = build_run_llc_dataset(cfg, 4.0, tmp_path / "M4", tasks)
    table = read_estimates(ds.expand_dims(M=[4.0]))
    assert (table.status == FAILED).all() and np.isnan(ds["llc_mean"]).all()
    assert all("finite loss at w" in e for e in ds.attrs["errors"]) and len(ds.attrs["errors"]) == ds.sizes["step"]
    assert any("no LLC estimate" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_one_calibration_fit_raising_is_isolated(tmp_path, tasks, monkeypatch, caplog):
    cfg = auto_config()
    write_checkpoints(cfg, tmp_path / "M4")
    from transient_ridge.llc import _record

    real_fit = _record.fit_together

    def fit_or_raise(estimators, *args, **kwargs):
        if any(e.epsilon == 1e-3 and e.seed == cfg.seeds.sgld + int(cfg.training.steps) for e in estimators):
            raise RuntimeError("simulated out-of-memory in one fit")
        return real_fit(estimators, *args, **kwargs)

    monkeypatch.setattr(_record, "fit_together", fit_or_raise)
    with caplog.at_level("ERROR"):
        ds = build_calibration_dataset(cfg, {4.0: tmp_path / "M4"}, tasks)
    at = ds.sel(M=4.0, gamma=100.0)
    final = int(cfg.training.steps)
    assert math.isnan(float(at["llc_mean"].sel(step=final, epsilon=1e-3)))
    status = read_estimates(at, ("step", "epsilon")).status
    steps = list(at["step"].values)
    assert status[steps.index(final), 1] == FAILED
    # every other fit ran: a number (whatever its status) at each of them
    others = np.isfinite(at["llc_mean"].values)
    others[steps.index(final), 1] = True
    assert others.all()
    assert any("simulated out-of-memory" in e for e in ds.attrs["errors"])
    assert any("the LLC fit raised" in r.getMessage() for r in caplog.records)
    assert not bool(at["healthy"].sel(step=final, epsilon=1e-3))


def test_every_epsilon_failing_is_not_refit(tmp_path, tasks, monkeypatch):
    cfg = auto_config(epsilon=[1e8, 1e9])  # every chain diverges at every point
    write_checkpoints(cfg, tmp_path / "M4")
    calibration = build_calibration_dataset(cfg, {4.0: tmp_path / "M4"}, tasks)
    assert math.isnan(float(calibration["chosen_epsilon"])) and calibration.attrs["rule_satisfied"] == 0
    assert "every epsilon" in calibration.attrs["choice_reason"]
    write_dataset(calibration, tmp_path / "llc_calibration.zarr")

    from transient_ridge.llc import _record

    def no_fit(*args, **kwargs):
        raise AssertionError("llc_run refitted an estimate the calibration already saw fail")

    monkeypatch.setattr(_record, "fit_together", no_fit)
    # through the rule's script, as Snakemake runs it: the NaN choice reaches llc_run
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "llc_run_script", Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "llc_run.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tasks_path = tmp_path / "tasks.zarr"
    write_dataset(build_tasks_dataset(cfg.for_run(4.0)), tasks_path)
    script.main("tiny", cfg.raw, "M4", str(tmp_path / "M4"), str(tasks_path), str(tmp_path / "llc.zarr"), 1,
                str(tmp_path / "llc_calibration.zarr"))
    ds = open_dataset(tmp_path / "llc.zarr")
    assert np.isnan(ds["llc_mean"]).all() and ds.sizes["draw"] == 0
    assert (read_estimates(ds.expand_dims(M=[4.0])).status == FAILED).all()
    assert all("calibration saw every epsilon fail" in e for e in ds.attrs["errors"])
    # the record function itself: a fit that raises is a failed record, not an exception
    model = init_model(cfg, 4.0)
    record = fit_checkpoint(model, llc_data(cfg, 4.0, tasks), cfg.llc, seed=0, epsilon=1e-3)
    assert record.status == FAILED and "refitted" in record.error


def test_the_calibration_store_records_the_experiment_config_and_the_seed_it_measured(tmp_path, tasks):
    # the archive records the config of the store written last, and after an `llc` edit that is
    # this one: a seed-narrowed config there would make restore report a difference that is not one
    import importlib.util
    import json
    from pathlib import Path

    block = copy.deepcopy(auto_config().raw)
    block["seeds"]["train"] = [5, 6]
    cfg = ExperimentConfig.from_dict("tiny", block)
    write_checkpoints(cfg.for_seed(5), tmp_path / "M4")
    tasks_path = tmp_path / "tasks.zarr"
    write_dataset(build_tasks_dataset(cfg), tasks_path)
    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"

    def load(name):
        spec = importlib.util.spec_from_file_location(f"{name}_script", scripts / f"{name}.py")
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        return script

    points = []
    for step in calibration_steps(cfg.for_seed(5)):
        points.append(str(tmp_path / f"step{int(step)}.zarr"))
        load("llc_calibration_point").main("tiny", cfg.raw, "M4/s5", int(step), str(tmp_path / "M4"), str(tasks_path),
                                           points[-1], 1)
    load("llc_calibration").main("tiny", cfg.raw, points, str(tmp_path / "llc_calibration.zarr"))
    attrs = open_dataset(tmp_path / "llc_calibration.zarr", load=False).attrs
    assert json.loads(attrs["config"]) == json.loads(cfg.to_json())
    assert json.loads(attrs["config"])["seeds"]["train"] == [5, 6] and attrs["train_seed"] == 5
