"""Config: the repository's config is valid; the schema names the key of every bad value."""

import copy
import math

import pytest

from transient_ridge.config import ConfigError, ExperimentConfig, parse_task_count, validate_config

from conftest import SCHEMA


def test_repository_config_is_valid_and_builds(repo_config):
    validate_config(repo_config, SCHEMA)
    for name in repo_config["experiments"]:
        cfg = ExperimentConfig.from_config(repo_config, name)
        assert cfg.data.M and cfg.training.steps > 0


def test_paper_experiment_carries_the_paper_values(repo_config):
    cfg = ExperimentConfig.from_config(repo_config, "paper")
    assert (cfg.data.D, cfg.data.K, cfg.data.noise_variance) == (8, 16, 0.125)
    assert min(cfg.data.M) == 1 and max(m for m in cfg.data.M if m != float("inf")) == 2**15
    assert float("inf") in cfg.data.M
    assert cfg.training.steps == 150_000
    assert cfg.probes.root_sequences == 512


def _with(block, path, value):
    config = {"experiments": {"x": copy.deepcopy(block)}}
    node = config["experiments"]["x"]
    *parents, leaf = path
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return config


_DELETE = object()


@pytest.mark.parametrize(
    "path, value, key, allowed",
    [
        (("data", "D"), 0, "experiments.x.data.D", ">= 1"),
        (("data", "K"), 0, "experiments.x.data.K", ">= 1"),
        (("data", "noise_variance"), -0.1, "experiments.x.data.noise_variance", "> 0"),
        (("data", "M"), [0, 4], "experiments.x.data.M.0", "integer >= 1"),
        (("data", "M"), [2, "many"], "experiments.x.data.M.1", '"inf"'),
        (("data", "D"), "eight", "experiments.x.data.D", "integer"),
        (("training", "lr"), 0, "experiments.x.training.lr", "> 0"),
        (("training", "schedule", "kind"), "cosine", "experiments.x.training.schedule.kind", "one_cycle"),
        (("llc", "num_chains"), 2, "experiments.x.llc.num_chains", ">= 4"),
        (("llc", "burnin_time"), 0, "experiments.x.llc.burnin_time", "> 0"),
        (("llc", "gamma"), 0, "experiments.x.llc.gamma", "> 0"),
        (("llc", "calibration", "epsilon"), [1e-3], "experiments.x.llc.calibration.epsilon", "at least 2"),
    ],
)
def test_schema_rejects_bad_values_naming_the_key(tiny_block, path, value, key, allowed):
    with pytest.raises(ConfigError) as info:
        validate_config(_with(tiny_block, path, value), SCHEMA)
    message = str(info.value)
    assert key in message and allowed in message


def test_schema_rejects_unknown_keys(tiny_block):
    config = _with(tiny_block, ("data", "dimension"), 3)
    with pytest.raises(ConfigError, match=r"experiments\.x\.data.*dimension"):
        validate_config(config, SCHEMA)


def test_schema_rejects_chain_lengths_in_steps_and_says_why(tiny_block):
    config = _with(tiny_block, ("llc", "num_burnin"), 100)
    with pytest.raises(ConfigError, match=r"experiments\.x\.llc.*num_burnin.*units of 1/\(epsilon \* gamma\)"):
        validate_config(config, SCHEMA)
    config = _with(tiny_block, ("llc", "steps"), [10, 20])  # and num_checkpoints: one of the two only
    with pytest.raises(ConfigError, match=r"experiments\.x\.llc"):
        validate_config(config, SCHEMA)


def test_schema_rejects_missing_sections(tiny_block):
    with pytest.raises(ConfigError, match="model"):
        validate_config(_with(tiny_block, ("model",), _DELETE), SCHEMA)


def test_dataclasses_reject_unknown_keys(tiny_block):
    tiny_block["model"]["dropout"] = 0.1
    with pytest.raises(ConfigError, match="dropout"):
        ExperimentConfig.from_dict("x", tiny_block)


def test_task_counts_parse():
    assert parse_task_count(4) == 4.0 and parse_task_count("16") == 16.0
    assert parse_task_count("inf") == float("inf")
    for bad in (0, "x", 2.5, -3):
        with pytest.raises(ConfigError):
            parse_task_count(bad)


def test_unknown_experiment_is_named(repo_config):
    with pytest.raises(ConfigError, match="known experiments"):
        ExperimentConfig.from_config(repo_config, "nope")


def test_run_fingerprint_ignores_the_rest_of_the_grid_only(tiny_block):
    from transient_ridge.train import TRAINING_SECTIONS

    def fingerprint(block, M):
        return ExperimentConfig.from_dict("tiny", block).run_fingerprint(TRAINING_SECTIONS, M)

    grown = copy.deepcopy(tiny_block)
    grown["data"]["M"] = [1, 2, 4, 16, "inf"]
    assert fingerprint(tiny_block, 4.0) == fingerprint(grown, 4.0)
    assert fingerprint(tiny_block, math.inf) == fingerprint(grown, math.inf)
    assert fingerprint(tiny_block, 4.0) != fingerprint(tiny_block, 1.0)
    wider = copy.deepcopy(tiny_block)
    wider["model"]["d_model"] = 16
    noisier = copy.deepcopy(tiny_block)
    noisier["data"]["noise_variance"] = 0.5
    assert fingerprint(wider, 4.0) != fingerprint(tiny_block, 4.0)
    assert fingerprint(noisier, 4.0) != fingerprint(tiny_block, 4.0)
    # the whole-experiment fingerprint still sees the grid
    assert ExperimentConfig.from_dict("tiny", grown).fingerprint(TRAINING_SECTIONS) != ExperimentConfig.from_dict(
        "tiny", tiny_block
    ).fingerprint(TRAINING_SECTIONS)


def test_for_run_narrows_the_grid_and_rejects_unknown_M(tiny_cfg):
    run = tiny_cfg.for_run(4.0)
    assert run.data.M == (4.0,) and run.model == tiny_cfg.model and run.training == tiny_cfg.training
    assert tiny_cfg.for_run(math.inf).data.M == (math.inf,)
    with pytest.raises(ConfigError, match=r"M=8 is not in data.M"):
        tiny_cfg.for_run(8.0)
