"""The disk budget of the paper sweep, from the config alone."""

from transient_ridge.budget import estimate_budget, main
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
