"""Training a group of runs as one batched computation (training.group_size).

The reference for every member is the same run trained alone (transient_ridge.train.train_run):
the group must give each member its own batches, init, loss and Adam state, so it ends where
the member alone ends, up to float rounding. Resume within a group is exact.
"""

import copy
import importlib.util
import logging
import math
import re
import subprocess

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, TINY_BLOCK
from test_workflow import SNAKEMAKE
from transient_ridge.checkpoint import list_checkpoints, load_checkpoint
from transient_ridge.config import TRAINING_SECTIONS, ExperimentConfig
from transient_ridge.run_files import RunFiles, publish_staged_run
from transient_ridge.store import open_dataset
from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
from transient_ridge.train import ProbeInputs, TrainingDivergedError, train_run
from transient_ridge.train_group import GroupMember, train_group

# Batched kernels sum in another order than the single model's: after 40 Adam steps the
# weights and predictions of a member agree with its run alone to ~1e-6 (measured 2e-7 on
# predictions of order 1). A member given another's batches or init is off by ~1e-1.
ROUNDING = dict(rtol=1e-4, atol=1e-5)


def _functional(name, value):
    """The weights that shape the model's function: the attention key bias is left out. It adds the same
    ``q . b_k`` to every score of a query, which the softmax cancels, so its gradient is zero up to
    rounding and Adam (which divides by the gradient's scale) turns that rounding into steps of order
    lr: it drifts ~1e-3 between two equally valid summation orders without changing any prediction."""
    if name.endswith("attn.qkv.bias"):
        q, _, v = value.chunk(3)
        return torch.cat([q, v])
    return value


@pytest.fixture
def seeded_cfg(tiny_block):
    """The tiny experiment with two train seeds (paired init seeds): members differ in M, seed and init."""
    tiny_block["seeds"].update(train=[1, 7], init=[2, 5], sgld=[4, 9])
    return ExperimentConfig.from_dict("tiny", tiny_block)


def _member(cfg, M, seed, run_dir):
    dataset = build_tasks_dataset(cfg)
    return GroupMember(cfg.for_seed(seed), M, tasks_from_dataset(dataset), ProbeInputs.from_tasks_dataset(dataset, M), run_dir)


def _alone(member, run_dir, **kwargs):
    train_run(member.cfg, member.M, member.tasks, member.probes, run_dir, **kwargs)


def _weights(run_dir, step):
    model, _ = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[step])
    return model.state_dict()


def _compare_runs(a, b, step, *, exact):
    assert sorted(list_checkpoints(a / "checkpoints")) == sorted(list_checkpoints(b / "checkpoints"))
    wa, wb = _weights(a, step), _weights(b, step)
    for name, value in wa.items():
        if exact:
            assert torch.equal(value, wb[name]), name
        else:
            torch.testing.assert_close(_functional(name, value), _functional(name, wb[name]), **ROUNDING, msg=name)
    pa, pb = open_dataset(a / "predictions.zarr"), open_dataset(b / "predictions.zarr")
    assert pa["step"].values.tolist() == pb["step"].values.tolist()
    assert (pa.attrs["M"], pa.attrs["seed"]) == (pb.attrs["M"], pb.attrs["seed"])
    for name in ("pred_root", "pred_ood", "pred_id"):
        if exact:
            np.testing.assert_array_equal(pa[name].values, pb[name].values)
        else:
            np.testing.assert_allclose(pa[name].values, pb[name].values, **ROUNDING)


def _resumed(caplog):
    return [(m[1], int(m[2])) for r in caplog.records if (m := re.search(r"(M=\S+): resuming from step (\d+)", r.getMessage()))]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_each_member_ends_where_its_run_alone_ends(seeded_cfg, tmp_path):
    runs = [(4.0, 1), (4.0, 7), (math.inf, 1), (1.0, 7)]
    members = [_member(seeded_cfg, M, seed, tmp_path / "group" / f"{i}") for i, (M, seed) in enumerate(runs)]
    train_group(members)
    steps = seeded_cfg.training.steps
    for i, member in enumerate(members):
        _alone(member, tmp_path / "alone" / f"{i}")
        _compare_runs(tmp_path / "group" / f"{i}", tmp_path / "alone" / f"{i}", steps, exact=False)
        assert not (tmp_path / "group" / f"{i}" / ".resume").exists()
    # the check can fail: two members of one M with other seeds and inits end far apart
    with pytest.raises(AssertionError):
        _compare_runs(tmp_path / "group" / "0", tmp_path / "alone" / "1", steps, exact=False)


def test_a_group_resumes_bit_identically_from_its_members_states(tiny_cfg, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="transient_ridge")
    Ms = [1.0, 4.0, math.inf]
    straight = [_member(tiny_cfg, M, None, tmp_path / "straight" / f"{i}") for i, M in enumerate(Ms)]
    train_group(straight)
    stopped = [_member(tiny_cfg, M, None, tmp_path / "stopped" / f"{i}") for i, M in enumerate(Ms)]
    train_group(stopped, stop_after=25)
    assert not any((m.run_dir / "predictions.zarr").exists() for m in stopped)
    assert _resumed(caplog) == []
    train_group(stopped)
    assert _resumed(caplog) == [("M=1", 20), ("M=4", 20), ("M=inf", 20)]  # the states saved at resume_every = 10
    for a, b in zip(straight, stopped):
        _compare_runs(a.run_dir, b.run_dir, tiny_cfg.training.steps, exact=True)


@pytest.mark.parametrize("moved", [False, True])
def test_a_group_save_cut_short_by_a_kill_is_undone_or_completed_and_resume_stays_exact(tiny_cfg, tmp_path, caplog, moved):
    """A kill inside a group's save: member 0 has written its state at step 30 to its pending file, and
    member 1 either has not (the save is undone: both resume from 20) or has already moved its own
    into place (the save is completed: both resume from 30). Either way the group ends as if never killed."""
    import shutil

    caplog.set_level(logging.INFO, logger="transient_ridge")
    Ms = [1.0, 4.0]
    straight = [_member(tiny_cfg, M, None, tmp_path / "straight" / f"M{M}") for M in Ms]
    train_group(straight)
    at_20 = [_member(tiny_cfg, M, None, tmp_path / "at_20" / f"M{M}") for M in Ms]
    train_group(at_20, stop_after=25)
    at_30 = [_member(tiny_cfg, M, None, tmp_path / "at_30" / f"M{M}") for M in Ms]
    train_group(at_30, stop_after=35)
    killed = [_member(tiny_cfg, M, None, tmp_path / "killed" / f"M{M}") for M in Ms]
    shutil.copytree(at_30[0].run_dir, killed[0].run_dir)  # member 0: everything up to 30, its state 30 pending
    files = RunFiles(killed[0].run_dir)
    files.state.replace(files.pending_state)
    shutil.copy(RunFiles(at_20[0].run_dir).state, files.state)
    shutil.copytree((at_30 if moved else at_20)[1].run_dir, killed[1].run_dir)
    train_group(killed)
    expected = 30 if moved else 20
    assert f"a group save at step 30 was interrupted: {'completed' if moved else 'undone'}" in caplog.text
    assert _resumed(caplog)[-2:] == [("M=1", expected), ("M=4", expected)]
    for a, b in zip(straight, killed):
        _compare_runs(a.run_dir, b.run_dir, tiny_cfg.training.steps, exact=True)


def test_members_resumed_at_different_steps_are_brought_to_a_common_step(tiny_cfg, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="transient_ridge")
    members = [_member(tiny_cfg, M, None, tmp_path / "group" / f"M{M}") for M in (1.0, 4.0)]
    _alone(members[1], members[1].run_dir, stop_after=25)  # M = 4 alone up to its state at step 20
    train_group(members)
    assert "M=1 resume from step 0, the others from later: training them to step 20 first" in caplog.text
    assert _resumed(caplog) == [("M=4", 20)]
    for member in members:
        _alone(member, tmp_path / "alone" / f"M{member.M}")
        _compare_runs(member.run_dir, tmp_path / "alone" / f"M{member.M}", tiny_cfg.training.steps, exact=False)


def test_members_left_staged_are_published_only_under_their_own_settings(tiny_cfg, tmp_path):
    members = [_member(tiny_cfg, M, None, tmp_path / f"M{M}") for M in (1.0, 4.0)]
    train_group(members, publish=[0])
    assert (members[0].run_dir / "predictions.zarr").exists()
    staged = members[1]
    assert not (staged.run_dir / "predictions.zarr").exists() and RunFiles(staged.run_dir).complete_marker.exists()
    total = tiny_cfg.training.steps
    fingerprint = tiny_cfg.run_fingerprint(TRAINING_SECTIONS, 4.0)
    other = tiny_cfg.run_fingerprint(TRAINING_SECTIONS, 1.0)
    assert not publish_staged_run(staged.run_dir, fingerprint=other, M=4.0, step=total, label="M=4")
    assert not publish_staged_run(staged.run_dir, fingerprint=fingerprint, M=4.0, step=total - 10, label="M=4")
    assert not (staged.run_dir / "predictions.zarr").exists()
    assert publish_staged_run(staged.run_dir, fingerprint=fingerprint, M=4.0, step=total, label="M=4")
    assert not (staged.run_dir / ".resume").exists()
    _alone(staged, tmp_path / "alone")
    _compare_runs(staged.run_dir, tmp_path / "alone", total, exact=False)


def test_a_diverging_member_is_named_and_no_member_is_published(tiny_block, tmp_path):
    tiny_block["training"].update(lr=1e30, schedule={"kind": "constant"})
    cfg = ExperimentConfig.from_dict("tiny", tiny_block)
    members = [_member(cfg, M, None, tmp_path / f"M{M}") for M in (1.0, 4.0)]
    with pytest.raises(TrainingDivergedError, match=r"training M=1 diverged at step \d+"):
        train_group(members)
    assert not any((m.run_dir / "predictions.zarr").exists() for m in members)


def test_members_must_share_the_model_and_training(tiny_block, tmp_path):
    cfg = ExperimentConfig.from_dict("tiny", copy.deepcopy(tiny_block))
    tiny_block["training"]["lr"] = 2e-3
    other = ExperimentConfig.from_dict("tiny", tiny_block)
    with pytest.raises(ValueError, match="must share the sections"):
        train_group([_member(cfg, 1.0, None, tmp_path / "a"), _member(other, 4.0, None, tmp_path / "b")])
    with pytest.raises(ValueError, match="distinct run directories"):
        train_group([_member(cfg, 1.0, None, tmp_path / "a"), _member(cfg, 4.0, None, tmp_path / "a")])


def _train_script():
    spec = importlib.util.spec_from_file_location("train_script", REPO / "workflow" / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_members_job_trains_it_alone_when_its_leader_staged_nothing(tiny_cfg, tmp_path):
    """The fallback of the train script for a member: outputs bit-identical to training it alone."""
    script = _train_script()
    member = _member(tiny_cfg, 4.0, None, tmp_path / "job" / "M4")
    assert not script.published_from_leader(tiny_cfg, "M4", "M1", member.run_dir)
    _alone(member, tmp_path / "alone")
    _alone(member, member.run_dir)
    _compare_runs(member.run_dir, tmp_path / "alone", tiny_cfg.training.steps, exact=True)


# ---- the workflow: a tiny experiment in groups of at most 2, built by Snakemake ----------


@pytest.fixture(scope="module")
def grouped_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("grouped")
    block = yaml.safe_load(yaml.safe_dump(TINY_BLOCK))
    block["training"]["group_size"] = 2
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"experiments": {"tiny": block}}))
    targets = [f"results/tiny/runs/{run}/outputs.zarr" for run in ("M1", "M4", "Minf")]
    command = [SNAKEMAKE, "-c", "2", *targets, "--snakefile", str(REPO / "Snakefile"), "--directory", str(root / "work"),
               "--configfile", str(config)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "work", result


def test_the_groups_leader_trains_them_and_each_member_job_publishes_its_run(grouped_build):
    """tiny's groups: [M4] (the calibration run, alone: the smallest group first), [M1, Minf] led by M1."""
    work, result = grouped_build
    jobs = re.findall(r"rule train:\n(?:    .*\n)*?    wildcards: exp=tiny, run=(\S+)", result.stderr)
    assert sorted(jobs) == ["M1", "M4", "Minf"]
    logs = work / "logs/tiny/train"
    assert "training M=1, M=inf together from step 0 to 40" in (logs / "M1.log").read_text()
    assert "Minf: trained by the train job of M1 (its group's leader); outputs published" in (logs / "Minf.log").read_text()
    assert "together" not in (logs / "M4.log").read_text()
    for run in ("M1", "M4", "Minf"):
        run_dir = work / "results/tiny/runs" / run
        assert (run_dir / "checkpoints").is_dir() and (run_dir / "outputs.zarr").is_dir()
        assert not (run_dir / ".resume").exists()
    assert float(open_dataset(work / "results/tiny/runs/Minf/predictions.zarr").attrs["M"]) == math.inf
