"""The disk budget of the paper sweep, from the config alone."""

from transient_ridge.budget import estimate_budget, estimate_wall_time, main
from transient_ridge.config import ExperimentConfig

from conftest import REPO


def test_paper_sweep_fits_in_60_gb(repo_config):
    budget = estimate_budget(ExperimentConfig.from_config(repo_config, "paper"))
    assert budget.checkpoint_steps == 2203 and budget.runs >= 17
    assert abs(budget.parameters - 2.65e6) < 0.01e6
    # weights: kept steps x parameters x 4 bytes, per run
    assert budget.checkpoints_per_run == budget.weight_steps * budget.parameters * 4
    assert budget.total_disk < 60e9


def test_budget_command_prints_the_verdict(capsys):
    main(["paper", "--config", str(REPO / "config.yaml")])
    out = capsys.readouterr().out
    assert "2203 checkpoint steps" in out and "fits" in out


def test_wall_time_against_a_hand_count(tiny_cfg):
    """tiny: 3 runs x 40 steps; LLC 2 checkpoints x 2 chains x (5 + 10) steps; calibration 1 estimate."""
    t = estimate_wall_time(tiny_cfg, train_steps_per_s=4, chain_steps_per_s=6, gpus=1, job_startup_s=10, cpu_overhead_s=60)
    assert t.llc_chain_steps_per_run == 2 * 2 * 15 and t.calibration_chain_steps == 2 * 15
    assert not t.calibration_assumed
    assert (t.train_job_s, t.llc_job_s, t.calibration_job_s) == (10 + 40 / 4, 10 + 60 / 6, 10 + 30 / 6)
    assert t.gpu_work_s == t.makespan_s == 3 * (20 + 20) + 15
    assert t.total_s == 135 + 60
    # 2 GPUs: T1 T4 [0, 20]; T_inf and the calibration (after T4) [20, 40] and [20, 35];
    # LLC M1 [35, 55], LLC M4 [40, 60], LLC inf [55, 75]
    assert estimate_wall_time(tiny_cfg, train_steps_per_s=4, chain_steps_per_s=6, gpus=2, job_startup_s=10).makespan_s == 75
    # as many GPUs as jobs allow: a training then its LLC is the critical path
    assert estimate_wall_time(tiny_cfg, train_steps_per_s=4, chain_steps_per_s=6, gpus=8, job_startup_s=10).makespan_s == 40


def test_wall_time_assumes_a_calibration_grid_when_the_config_has_none(tiny_block):
    del tiny_block["llc"]["calibration"]
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    t = estimate_wall_time(cfg, train_steps_per_s=4, chain_steps_per_s=6, job_startup_s=0)
    assert t.calibration_assumed and t.calibration_chain_steps == 2 * 3 * 4 * (2 * 15)


def test_budget_command_prints_the_derived_wall_time(capsys):
    main(["paper_slice", "--config", str(REPO / "config.yaml"), "--train-steps-per-s", "190", "--chain-steps-per-s", "735"])
    out = capsys.readouterr().out
    assert "DERIVED" in out and "on 1 GPU(s)" in out


def test_paper_slice_is_sized_to_fit_eight_minutes_on_one_gpu(repo_config):
    """At the lower end of the rates measured on an H200 (shared/gpu/README.md: 172 steps/s inside
    `train`, 735 chain-steps/s at SGLD batch 64), with the assumed calibration and overheads."""
    cfg = ExperimentConfig.from_config(repo_config, "paper_slice")
    assert cfg.llc.batch_size == 64  # the batch the chain rate was measured at
    t = estimate_wall_time(cfg, train_steps_per_s=172, chain_steps_per_s=735, gpus=1)
    assert t.total_s < 8 * 60
    finite = [m for m in cfg.data.M if m != float("inf")]
    assert float("inf") in cfg.data.M and min(finite) <= 16 and any(32 <= m <= 128 for m in finite)
