"""The disk budget of the paper sweep, from the config alone."""

from transient_ridge.budget import calibration_chain_steps, estimate_budget, estimate_wall_time, main
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
    """tiny: 3 runs x 40 steps; LLC at ε = 1e-3, γ = 100: 2 checkpoints x 4 chains x (5 + 10) steps (0.5 + 1
    units of 1/(εγ)); calibration: 1 run x 2 checkpoints (first, middle = last of the 2) x the grid
    {3e-4: 17 + 34 steps, 1e-3: 5 + 10} x 4 chains."""
    t = estimate_wall_time(tiny_cfg, train_steps_per_s=4, chain_steps_per_s=6, gpus=1, job_startup_s=10, cpu_overhead_s=60)
    assert t.llc_chain_steps_per_run == 2 * 4 * 15 and t.calibration_chain_steps == 2 * 4 * (51 + 15)
    assert (t.train_job_s, t.llc_job_s, t.calibration_job_s) == (10 + 40 / 4, 10 + 120 / 6, 10 + 528 / 6)
    assert t.gpu_work_s == t.makespan_s == 3 * 20 + 98 + 3 * 30
    assert t.total_s == 248 + 60
    # 2 GPUs: T1 T4 [0, 20]; T_inf [20, 40] and the calibration (after T4) [20, 118];
    # LLC M1, M4, inf one after another on the first GPU [40, 130]
    assert estimate_wall_time(tiny_cfg, train_steps_per_s=4, chain_steps_per_s=6, gpus=2, job_startup_s=10).makespan_s == 130
    # as many GPUs as jobs allow, explicit epsilon: the LLC runs do not wait; the calibration is the critical path
    assert estimate_wall_time(tiny_cfg, train_steps_per_s=4, chain_steps_per_s=6, gpus=8, job_startup_s=10).makespan_s == 118


def test_with_epsilon_auto_every_llc_run_waits_for_the_calibration(tiny_block):
    tiny_block["llc"]["epsilon"] = "auto"
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    # 8 GPUs: trainings [0, 20], calibration [20, 118], then every LLC run [118, 148] (at the
    # second-smallest grid epsilon, 1e-3: the longest chains a satisfied rule can give)
    assert estimate_wall_time(cfg, train_steps_per_s=4, chain_steps_per_s=6, gpus=8, job_startup_s=10).makespan_s == 148


def test_calibration_with_its_own_chains_and_none_without_a_grid(tiny_block):
    tiny_block["llc"]["calibration"].update(num_chains=3, burnin_time=0.1, draw_time=0.3)
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    # 2 checkpoints x 3 chains x ((4 + 10) steps at 3e-4 + (1 + 3) at 1e-3)
    assert calibration_chain_steps(cfg) == 2 * 3 * ((4 + 10) + (1 + 3))
    del tiny_block["llc"]["calibration"]
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    t = estimate_wall_time(cfg, train_steps_per_s=4, chain_steps_per_s=6, gpus=1, job_startup_s=10)
    assert t.calibration_chain_steps == 0 and t.calibration_job_s == 0 and t.makespan_s == 3 * (20 + 30)


def test_budget_command_prints_the_derived_wall_time(capsys):
    main(["paper_slice", "--config", str(REPO / "config.yaml"), "--train-steps-per-s", "190", "--chain-steps-per-s", "735"])
    out = capsys.readouterr().out
    assert "DERIVED" in out and "on 1 GPU(s)" in out


def test_paper_slice_is_sized_to_fit_eight_minutes_on_one_gpu(repo_config):
    """At the lower end of the rates measured on an H200 (shared/gpu/README.md: 172 steps/s inside
    `train`, 735 chain-steps/s at SGLD batch 64), with its calibration and the assumed overheads."""
    cfg = ExperimentConfig.from_config(repo_config, "paper_slice")
    assert cfg.llc.batch_size == 64  # the batch the chain rate was measured at
    t = estimate_wall_time(cfg, train_steps_per_s=172, chain_steps_per_s=735, gpus=1)
    assert t.total_s < 8 * 60
    finite = [m for m in cfg.data.M if m != float("inf")]
    assert float("inf") in cfg.data.M and min(finite) <= 16 and any(32 <= m <= 128 for m in finite)
