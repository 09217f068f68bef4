"""Config: the repository's config is valid; the schema names the key of every bad value."""

import copy
import math

import pytest

from transient_ridge.config import ConfigError, ExperimentConfig, parse_task_count, validate_config

from conftest import SCHEMA, TINY_BLOCK


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
        (("training", "group_size"), 0, "experiments.x.training.group_size", ">= 1"),
        (("training", "group_size"), 65, "experiments.x.training.group_size", "<= 64"),
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


def _seeded(block, **seeds):
    block = copy.deepcopy(block)
    block["seeds"].update(seeds)
    return block


def test_seed_lists_pass_the_schema_and_build_runs_per_M_and_seed(tiny_block):
    block = _seeded(tiny_block, train=[1, 7], init=2, sgld=[4, 9])
    validate_config({"experiments": {"x": block}}, SCHEMA)
    cfg = ExperimentConfig.from_dict("x", block)
    assert cfg.seeds.has_seed_axis and cfg.seeds.train_seeds == (1, 7)
    assert cfg.run_labels() == ["M1/s1", "M1/s7", "M4/s1", "M4/s7", "Minf/s1", "Minf/s7"]
    assert cfg.parse_run("M4/s7") == (4.0, 7)
    # init is shared, sgld paired position by position
    assert (cfg.for_seed(7).seeds.train, cfg.for_seed(7).seeds.init, cfg.for_seed(7).seeds.sgld) == (7, 2, 9)
    single = ExperimentConfig.from_dict("x", tiny_block)
    assert not single.seeds.has_seed_axis and single.run_labels() == ["M1", "M4", "Minf"]
    assert single.for_seed(None) is single and single.parse_run("M4") == (4.0, None)


@pytest.mark.parametrize(
    "seeds, key, hint",
    [
        ({"train": [1, 1]}, "experiments.x.seeds.train", "distinct"),
        ({"train": []}, "experiments.x.seeds.train", "list of distinct seeds"),
        ({"sgld": [-1]}, "experiments.x.seeds.sgld", "0..4294967295"),
    ],
)
def test_schema_rejects_bad_seed_lists_naming_the_key(tiny_block, seeds, key, hint):
    with pytest.raises(ConfigError) as info:
        validate_config({"experiments": {"x": _seeded(tiny_block, **seeds)}}, SCHEMA)
    assert key in str(info.value) and hint in str(info.value)


@pytest.mark.parametrize(
    "seeds, message",
    [
        ({"train": [1, 1]}, r"experiments\.x\.seeds\.train: \[1, 1\] repeats a seed"),
        ({"train": 1, "init": [2, 3]}, r"experiments\.x\.seeds\.init: \[2, 3\] is a list but seeds\.train=1 is one seed"),
        ({"train": [1, 7], "sgld": [4, 5, 6]}, r"experiments\.x\.seeds\.sgld: \[4, 5, 6\] has 3 seed\(s\) but seeds\.train \[1, 7\] has 2"),
    ],
)
def test_dataclasses_reject_unpaired_seed_lists_naming_the_key(tiny_block, seeds, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict("x", _seeded(tiny_block, **seeds))


def test_run_labels_name_the_layout_and_reject_the_other_one(tiny_block):
    cfg = ExperimentConfig.from_dict("x", _seeded(tiny_block, train=[1, 7]))
    with pytest.raises(ConfigError, match=r"run 'M4' is not one of its runs .* runs/M\{M\}/s\{seed\}/"):
        cfg.parse_run("M4")
    with pytest.raises(ConfigError, match=r"seed 3 is not one of the train seeds \[1, 7\]"):
        cfg.for_seed(3)
    with pytest.raises(ConfigError, match="must look like"):
        cfg.parse_run("M4/seed1")


def test_a_run_fingerprint_carries_only_its_own_seed(tiny_block):
    from transient_ridge.train import TRAINING_SECTIONS

    def fingerprint(block, M, seed):
        return ExperimentConfig.from_dict("x", block).run_fingerprint(TRAINING_SECTIONS, M, seed)

    two = _seeded(tiny_block, train=[1, 7], sgld=[4, 9])
    three = _seeded(tiny_block, train=[1, 7, 3], sgld=[4, 9, 5])
    for M in (1.0, 4.0, math.inf):
        for seed in (1, 7):  # adding seed 3 leaves the runs of seeds 1 and 7 unchanged
            assert fingerprint(two, M, seed) == fingerprint(three, M, seed)
    assert fingerprint(two, 4.0, 1) != fingerprint(two, 4.0, 7)
    # a run of seed 1 has the settings of the one-seed experiment with train seed 1
    assert fingerprint(two, 4.0, 1) == fingerprint(tiny_block, 4.0, None)
    # paired init seeds reach the run
    paired = _seeded(tiny_block, train=[1, 7], init=[2, 8])
    assert fingerprint(paired, 4.0, 1) == fingerprint(tiny_block, 4.0, None)
    assert fingerprint(paired, 4.0, 7) != fingerprint(two, 4.0, 7)


def test_the_calibration_seed_is_the_first_train_seed_or_none_without_a_seed_axis():
    import copy

    block = copy.deepcopy(TINY_BLOCK)
    assert ExperimentConfig.from_dict("tiny", block).seeds.calibration_seed is None
    block["seeds"]["train"] = [7, 1]
    block["seeds"]["init"] = [2, 3]
    assert ExperimentConfig.from_dict("tiny", block).seeds.calibration_seed == 7


@pytest.mark.parametrize(
    "M, train_seeds, group_size, expected",
    [
        # mini's grid: the calibration run (M = inf) first, in the smaller of two groups of at most 3
        ([1, 4, 16, 64, "inf"], 1, 3, [["Minf", "M1"], ["M4", "M16", "M64"]]),
        ([1, 4, 16, 64, "inf"], 1, 1, [["Minf"], ["M1"], ["M4"], ["M16"], ["M64"]]),
        ([1, 4, 16, 64, "inf"], 1, 5, [["Minf", "M1", "M4", "M16", "M64"]]),
        ([1, 4, 16, 64, "inf"], 1, 64, [["Minf", "M1", "M4", "M16", "M64"]]),
        ([1, 4, 16, 64, "inf"], 1, 2, [["Minf"], ["M1", "M4"], ["M16", "M64"]]),
        # a seed axis: the calibration run is the first train seed's
        ([4, "inf"], [1, 7, 9], 4, [["Minf/s1", "M4/s1", "M4/s7"], ["M4/s9", "Minf/s7", "Minf/s9"]]),
    ],
)
def test_train_groups_are_even_smallest_first_and_lead_with_the_calibration_runs(
    tiny_block, M, train_seeds, group_size, expected
):
    tiny_block["data"]["M"] = M
    tiny_block["seeds"]["train"] = train_seeds
    if isinstance(train_seeds, list):
        tiny_block["seeds"]["init"] = [2 + s for s in train_seeds]
    tiny_block["training"]["group_size"] = group_size
    tiny_block["llc"]["calibration"]["M"] = ["inf"]
    cfg = ExperimentConfig.from_dict("x", tiny_block)
    groups = cfg.train_groups()
    assert groups == expected
    assert sorted(run for group in groups for run in group) == sorted(cfg.run_labels())
    for group in groups:
        assert all(cfg.train_group_of(run) == group for run in group)
    with pytest.raises(ConfigError, match="not one of its runs"):
        cfg.train_group_of("M3")
