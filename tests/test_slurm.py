"""The cluster path for real: the tiny experiment through workflow/profiles/slurm-cpu on a
one-node SLURM cluster (slurmctld, slurmd, slurmdbd on MariaDB, munge; all on localhost),
started by tests/slurm/cluster.sh. Marked ``slurm``: the default run skips it.

    python -m pytest -m slurm -rP      # needs root and apt (or the packages installed); ~7 min on 2 cores

It checks what a dry run cannot: every non-local job goes through sbatch (sacct lists it),
the outputs equal those of a local run, and a training job cancelled with scancel mid-run is
retried by Snakemake and resumes from its resume state instead of step 0. First, a start made
to fail once slurmdbd is up must leave no daemon and no config file of its own behind.

Where the cluster cannot start (not root, no apt) the tests skip, but under CI=true (.ci/run)
they fail: CI cannot pass by skipping them.

The test passes `--latency-wait 3 --slurm-init-seconds-before-status-checks 2` on the command
line, as a site with a fast shared file system and a quiet controller would; the profile's
own values (60 s, 20 s) are for a busy cluster. No rule is made local for the test.
"""

import copy
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, TINY_BLOCK, running_in_ci
from same_outputs import assert_same_outputs
from test_workflow import SNAKEMAKE

pytestmark = pytest.mark.slurm

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
PROFILE = REPO / "workflow" / "profiles" / "slurm-cpu"
SKIP = 77  # cluster.sh: cannot run here
KILLED_M = "4"
KILLED_WILDCARDS = f"tiny_M{KILLED_M}"  # exp, run: the plugin joins wildcard values with "_"
KILL_AFTER_STEP = 300  # cancel once the resume state has passed this step
# the rules that run as SLURM jobs (the figures, claims, the llc and calibration gathers and targets are local rules)
CLUSTER_RULES = {"tasks", "run_tasks", "baselines", "train", "evaluate", "pca", "llc_run", "llc_calibration_point"}


def _block():
    """The tiny experiment, with training long enough (2000 steps, a few seconds) to be cancelled mid-run."""
    block = copy.deepcopy(TINY_BLOCK)
    block["training"].update(steps=2000, resume_every=100, log_every=500)
    block["checkpoints"].update(linear_interval=500)
    return block


def cannot_run_here(reason: str) -> None:
    """Skip, or under CI=true fail: CI must run the cluster test."""
    if running_in_ci():
        pytest.fail(f"CI=true and the SLURM cluster cannot start here: {reason}")
    pytest.skip(reason)


def start_cluster(env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if shutil.which("bash") is None:
        cannot_run_here("needs bash")
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=900, env=env)
    if started.returncode == SKIP:
        cannot_run_here(started.stderr.strip().splitlines()[-1])
    return started


MARKER = "# written by tests/slurm/cluster.sh"


def _running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and _running(int(proc.name)):
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def test_a_start_that_fails_after_slurmdbd_is_up_leaves_nothing_of_its_own(tmp_path):
    state = tmp_path / "cluster"
    env = dict(os.environ, TR_SLURM_DIR=str(state), TR_SLURM_FAIL_AFTER="slurmdbd",
               TR_SLURM_DB_PORT="3376", TR_SLURM_PORTS="6837 6838 6839")  # fmt: skip
    failed = start_cluster(env)
    print(failed.stderr)
    assert failed.returncode not in (0, SKIP), failed.stderr[-3000:]
    assert "TR_SLURM_FAIL_AFTER=slurmdbd: failing on purpose" in failed.stderr
    started = {name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", failed.stderr)}
    assert {"mariadbd", "slurmdbd"} <= set(started), failed.stderr[-3000:]  # it did get that far
    assert "slurmctld" not in started
    left = {name: pid for name, pid in started.items() if _running(pid)}
    assert not left, f"still running after the failed start: {left}"
    assert not _processes_mentioning(str(state)), _processes_mentioning(str(state))
    assert not list((state / "pids").iterdir())
    for name in ("slurm.conf", "slurmdbd.conf"):
        path = Path("/etc/slurm") / name
        assert not (path.exists() and MARKER in path.read_text().splitlines()), f"{path} was left behind"


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("snakemake_executor_plugin_slurm")
    started = start_cluster()
    assert started.returncode == 0, started.stderr[-3000:]
    print(started.stderr)
    yield
    stopped = subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, text=True, timeout=120)
    print(stopped.stderr)


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # jobs run this venv's python
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    return env


def _snakemake_args(config, workdir):
    return ["tiny", "--configfile", str(config), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]


def _squeue_job(comment):
    """The SLURM job id of the pending or running job whose comment is ``comment``, or None."""
    result = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, timeout=30)
    for line in result.stdout.splitlines():
        job, _, text = line.partition("|")
        if text.strip() == comment:
            return job.strip()
    return None


def _resume_step(run_dir):
    state = run_dir / ".resume" / "state.pt"
    try:
        return int(torch.load(state, map_location="cpu", weights_only=False)["step"])
    except (FileNotFoundError, EOFError, RuntimeError, KeyError, OSError):
        return -1


def _cancel_training_mid_run(process, workdir):
    """scancel the train job of M=KILLED_M once its resume state is past KILL_AFTER_STEP; its job id."""
    run_dir = workdir / "results" / "tiny" / "runs" / f"M{KILLED_M}"
    comment = f"rule_train_wildcards_{KILLED_WILDCARDS}"
    deadline = time.time() + 3600
    while time.time() < deadline and process.poll() is None:
        if _resume_step(run_dir) >= KILL_AFTER_STEP:
            job = _squeue_job(comment)
            assert job is not None, f"the state passed step {KILL_AFTER_STEP} but squeue lists no {comment}"
            subprocess.run(["scancel", job], check=True, timeout=30)
            print(f"scancel {job} ({comment}) at resume step {_resume_step(run_dir)}")
            return job
        time.sleep(0.2)
    pytest.fail(f"train M={KILLED_M} never reached step {KILL_AFTER_STEP} while Snakemake ran (rc {process.poll()})")


def _sacct(workdir):
    """(job id, rule, wildcards, state) of every SLURM job that ran in ``workdir``."""
    result = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-1days", "--format=JobID,Comment%200,State,WorkDir%400"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    jobs = []
    for line in result.stdout.splitlines():
        job, comment, state, where = line.split("|")
        if Path(where) == workdir and comment.startswith("rule_"):
            rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
            jobs.append((job, rule, wildcards, state.split()[0]))
    return jobs


def test_slurm_runs_every_cluster_job_through_sbatch_and_resumes_a_cancelled_training(cluster, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"experiments": {"tiny": _block()}}))
    local, on_cluster = tmp_path / "local", tmp_path / "cluster"

    result = subprocess.run(
        [SNAKEMAKE, "-c", "2", *_snakemake_args(config, local)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=3600
    )
    assert result.returncode == 0, result.stderr[-3000:]

    log_path = tmp_path / "slurm-snakemake.log"
    command = [
        SNAKEMAKE, *_snakemake_args(config, on_cluster), "--workflow-profile", str(PROFILE),
        "--latency-wait", "3", "--slurm-init-seconds-before-status-checks", "2",
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            cancelled = _cancel_training_mid_run(process, on_cluster)
            process.wait(timeout=5400)
        except subprocess.TimeoutExpired:
            queue = subprocess.run(["squeue"], capture_output=True, text=True).stdout
            pytest.fail(f"Snakemake did not finish within 90 min; squeue:\n{queue}\n{log_path.read_text()[-5000:]}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log_path.read_text()
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", text)
    print(f"{' '.join(command)}\nsbatch job ids: {submitted}")
    assert process.returncode == 0, text[-5000:]

    jobs = _sacct(on_cluster)
    print("sacct (job, rule, wildcards, state):\n  " + "\n  ".join(" ".join(job) for job in jobs))
    assert {job for job, *_ in jobs} == set(submitted)
    assert {rule for _, rule, _, _ in jobs} == CLUSTER_RULES
    scheduled = set(re.findall(r"^rule (\w+):", text, flags=re.MULTILINE))
    assert scheduled == CLUSTER_RULES  # nothing else went to the cluster; the rest ran as local rules
    assert (cancelled, "train", KILLED_WILDCARDS, "CANCELLED") in jobs
    finished = [(rule, wildcards) for _, rule, wildcards, state in jobs if state == "COMPLETED"]
    assert sorted(finished) == sorted(set(finished))  # each job completed once
    assert ("train", KILLED_WILDCARDS) in finished

    train_log = (on_cluster / "logs" / "tiny" / "train" / f"M{KILLED_M}.log").read_text()
    resumed = re.search(r"resuming from step (\d+)", train_log)
    assert resumed and int(resumed.group(1)) >= KILL_AFTER_STEP, train_log[-2000:]
    print(f"retried train M={KILLED_M}: {resumed.group(0)}")

    assert_same_outputs(local, on_cluster, "tiny")
