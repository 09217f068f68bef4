"""Fault battery, configuration: each bad value stops before any job with one message that
names the key, the value and what is allowed (docs/workflow.md, "Faults and what happens").

The schema's own checks are in tests/test_config.py; the kinds here are the ones a user hits
by mistake, through every layer that checks them: the JSON schema, the frozen dataclasses and
the checks across sections (``check_experiment``).
"""

import copy
import subprocess

import pytest

from conftest import REPO, SCHEMA, TINY_BLOCK
from test_workflow import SNAKEMAKE
from transient_ridge.config import ConfigError, ExperimentConfig, check_experiment, validate_config


def _snakemake(*args):
    # a generous limit: on a machine shared with training runs a dry run can take minutes
    return subprocess.run([SNAKEMAKE, *args], cwd=REPO, capture_output=True, text=True, timeout=1800)


def _config(edit):
    block = copy.deepcopy(TINY_BLOCK)
    edit(block)
    return {"experiments": {"x": block}}


def _validate(config):
    """What common.smk does at start-up: schema, dataclasses, checks across sections."""
    validate_config(config, SCHEMA)
    for name in config["experiments"]:
        check_experiment(ExperimentConfig.from_config(config, name))


def _set(path, value):
    def edit(block):
        *parents, leaf = path
        node = block
        for key in parents:
            node = node[key]
        node[leaf] = value

    return edit


def _drop(path):
    def edit(block):
        *parents, leaf = path
        node = block
        for key in parents:
            node = node[key]
        del node[leaf]

    return edit


BAD_CONFIGS = {
    # kind: (edit, the key the message names, words of what is allowed)
    "dimension out of range": (_set(("data", "D"), 0), "experiments.x.data.D", ">= 1"),
    "dimension of the wrong type": (_set(("data", "D"), "eight"), "experiments.x.data.D", "integer"),
    "noise variance not positive": (_set(("data", "noise_variance"), 0), "experiments.x.data.noise_variance", "> 0"),
    "task count zero": (_set(("data", "M"), [0, 4]), "experiments.x.data.M.0", "integer >= 1"),
    "task count not a number": (_set(("data", "M"), [4, "many"]), "experiments.x.data.M.1", '"inf"'),
    "task count repeated": (_set(("data", "M"), [4, 4]), "experiments.x.data.M", "non-unique"),
    "misspelt key": (_set(("training", "stpes"), 100), "experiments.x.training", "stpes"),
    "missing section": (_drop(("model",)), "experiments.x", "'model' is a required property"),
    "learning rate zero": (_set(("training", "lr"), 0), "experiments.x.training.lr", "> 0"),
    "unknown schedule": (_set(("training", "schedule", "kind"), "cosine"), "experiments.x.training.schedule.kind", "one_cycle"),
    "unknown precision": (_set(("training", "precision"), "fp16"), "experiments.x.training.precision", "bf16"),
    "negative seed": (_set(("seeds", "train"), -1), "experiments.x.seeds.train", "0..4294967295"),
    "too few log checkpoints": (_set(("checkpoints", "log_count"), 1), "experiments.x.checkpoints.log_count", ">= 2"),
    "heads that do not divide the width": (_set(("model", "n_head"), 3), "experiments.x.model.d_model", "allowed n_head"),
    "SGLD batch larger than the sample": (_set(("llc", "batch_size"), 65), "experiments.x.llc.batch_size", "<= 64"),
    "epsilon auto without a calibration grid": (
        lambda block: (block["llc"].update(epsilon="auto"), block["llc"].pop("calibration")),
        "llc.epsilon",
        "add one or give epsilon as a number",
    ),
    "calibration gamma without llc.gamma": (
        lambda block: block["llc"].update(epsilon="auto", calibration={"M": [4], "epsilon": [1e-4, 1e-3], "gamma": [1.0]}),
        "llc.calibration.gamma",
        "must include llc.gamma=100",
    ),
    "calibration run not in the grid": (_set(("llc", "calibration", "M"), [8]), "experiments.x.llc.calibration.M", "not in data.M"),
    "more PCA components than the PCA has rows": (
        _set(("pca", "n_components"), 60), "experiments.x.pca.n_components", "allowed: 1..27"
    ),
    "bad experiment name": (None, "experiments", "does not match"),
}


@pytest.mark.parametrize("kind", sorted(BAD_CONFIGS))
def test_a_bad_config_is_refused_naming_the_key_and_what_is_allowed(kind):
    edit, key, allowed = BAD_CONFIGS[kind]
    if edit is None:
        config = {"experiments": {"2fast": copy.deepcopy(TINY_BLOCK)}}
    else:
        config = _config(edit)
    with pytest.raises(ConfigError) as info:
        _validate(config)
    message = str(info.value)
    assert key in message and allowed in message, message


def test_a_bad_config_stops_snakemake_before_any_job(tmp_path):
    # a check across sections (not the schema's): it too runs at start-up, in common.smk
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  mini:\n    model:\n      n_head: 3\n")
    result = _snakemake("-n", "all", "--configfile", str(bad), "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "experiments.mini.model.d_model" in output and "allowed n_head" in output, output[-3000:]
    assert "Job stats" not in output and not (tmp_path / "results").exists()


def test_a_config_file_that_is_not_yaml_stops_snakemake_before_any_job(tmp_path):
    # Snakemake reads --configfile before the workflow runs any code of ours; its message
    # (Snakemake 9.27) does not name the file, so docs/workflow.md says how to find the error
    bad = tmp_path / "broken.yaml"
    bad.write_text("experiments:\n  mini: {data: [1, 2\n")
    result = _snakemake("-n", "all", "--configfile", str(bad), "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Config file is not valid JSON or YAML" in output, output[-3000:]
    assert "Job stats" not in output and not (tmp_path / "results").exists()
