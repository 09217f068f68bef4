"""benchmarks/bench_pipeline.py's profile: the log parser, the critical path and the floor, on a made-up log."""

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_pipeline  # noqa: E402


def _job(stamp, rule, jobid, inputs=(), outputs=(), wildcards=""):
    lines = [f"[Wed Dec  2 10:00:{stamp:02d} 2026]", f"localrule {rule}:"]
    if inputs:
        lines.append(f"    input: {', '.join(inputs)}")
    if outputs:
        lines.append(f"    output: {', '.join(outputs)}")
    lines += [f"    jobid: {jobid}", f"    benchmark: b/{rule}{jobid}.tsv"]
    if wildcards:
        lines.append(f"    wildcards: exp=mini, {wildcards}")
    return lines


def _done(stamp, rule, jobid):
    return [f"[Wed Dec  2 10:00:{stamp:02d} 2026]", f"Finished jobid: {jobid} (Rule: {rule})"]


# Two cores. a (0-10) and b (0-4) start together; c needs b but waits for a core until a ends at 10
# (c 10-15); d needs a (10-30); e needs c and d (30-31). Longest chain a -> d -> e = 31 s.
LOG = "\n".join(
    ["Building DAG of jobs...", "Provided cores: 2"]
    + _job(0, "train", 1, outputs=["A"], wildcards="run=M1")
    + _job(0, "train", 2, outputs=["B"], wildcards="run=M4")
    + _done(4, "train", 2)
    + _done(10, "train", 1)
    + _job(10, "evaluate", 3, inputs=["B"], outputs=["C"], wildcards="run=M4")
    + _job(10, "fig1_pca", 4, inputs=["A"], outputs=["D"])
    + _done(15, "evaluate", 3)
    + _done(30, "fig1_pca", 4)
    + _job(30, "all", 5, inputs=["C", "D"])
    + _done(31, "all", 5)
)


def test_the_log_gives_each_job_its_times_and_inputs():
    jobs, wall = bench_pipeline.parse_log(LOG)
    assert wall == 31
    by_id = {job.jobid: job for job in jobs}
    assert [(by_id[i].start, by_id[i].end) for i in (1, 2, 3, 4, 5)] == [(0, 10), (0, 4), (10, 15), (10, 30), (30, 31)]
    assert by_id[3].deps == [2] and by_id[4].deps == [1] and by_id[5].deps == [3, 4]
    assert by_id[1].label == "train[M1]" and by_id[4].stage == "figures"


def test_critical_path_follows_inputs_and_cores():
    jobs, _ = bench_pipeline.parse_log(LOG)
    path = [(job.jobid, why) for job, why in reversed(bench_pipeline.critical_path(jobs))]
    assert path == [(1, "start"), (4, "after its input"), (5, "after its input")]
    assert bench_pipeline.longest_chain(jobs) == 31


def test_a_job_that_waited_for_a_core_says_so():
    # d now ends at 12, so e follows c (10-15), and c was ready at 4 but started at 10, when a freed its core
    jobs, _ = bench_pipeline.parse_log(
        LOG.replace("[Wed Dec  2 10:00:30 2026]\nFinished jobid: 4", "[Wed Dec  2 10:00:12 2026]\nFinished jobid: 4")
    )
    path = [(job.jobid, why) for job, why in reversed(bench_pipeline.critical_path(jobs))]
    assert path[-2:] == [(3, "waited for a core"), (5, "after its input")]


def test_jobs_that_start_and_end_in_the_same_second_do_not_loop_the_critical_path():
    # two instant jobs at 0 (the log stamps whole seconds), a reads the first: each "ended" by the other's start
    instant = _job(0, "run_tasks", 8, outputs=["T8"]) + _job(0, "run_tasks", 9, outputs=["T9"])
    instant += _done(0, "run_tasks", 8) + _done(0, "run_tasks", 9)
    log = LOG.replace("Provided cores: 2", "Provided cores: 2\n" + "\n".join(instant))
    log = log.replace("localrule train:\n    output: A", "localrule train:\n    input: T8\n    output: A")
    jobs, _ = bench_pipeline.parse_log(log)
    path = [job.jobid for job, _ in reversed(bench_pipeline.critical_path(jobs))]
    assert len(path) == len(set(path))
    assert path[-3:] == [1, 4, 5] and set(path[:-3]) <= {8, 9}


def test_an_unfinished_job_is_named():
    with pytest.raises(ValueError, match=r"without a 'Finished' line.*fig1_pca"):
        bench_pipeline.parse_log(LOG.replace("Finished jobid: 4 (Rule: fig1_pca)", ""))


def test_the_training_rate_of_each_run_is_its_last_progress_line(tmp_path):
    train = tmp_path / "logs" / "mini" / "train"
    train.mkdir(parents=True)
    (train / "M1.log").write_text(
        "2026-12-03 07:00:00,000 INFO root: mini run M1 on cpu with 1 thread(s)\n"
        "2026-12-03 07:00:06,000 INFO transient_ridge.train: M=1 step 500/2500 loss 0.3 lr 2e-03 80.0 steps/s ETA 25 s\n"
        "2026-12-03 07:00:26,000 INFO transient_ridge.train: M=1 step 2500/2500 loss 0.2 lr 4e-05 96.5 steps/s ETA 0 s\n"
    )
    (train / "M4.log").write_text("2026-12-03 07:00:06,000 INFO transient_ridge.train: M=4 step 500/2500 loss 0.3 "
                                  "lr 2e-03 80.0 steps/s ETA 25 s\n")  # killed before its end: no rate of the run
    (train / "Minf.log").write_text(  # a group's leader: the group's steps/s, times its size in model steps
        "2026-12-03 07:00:26,000 INFO transient_ridge.train_group: M=inf step 2500/2500 loss 0.2 lr 4e-05 "
        "50.0 steps/s ETA 0 s (in a group of 2)\n"
        "2026-12-03 07:00:26,000 INFO transient_ridge.train_group: M=1 step 2500/2500 loss 0.2 lr 4e-05 "
        "50.0 steps/s ETA 0 s (in a group of 2)\n"
    )
    (train / "M64.log").write_text("2026-12-03 07:00:27,000 INFO root: M64: trained by the train job of M4 "
                                   "(its group's leader); outputs published\n")
    assert bench_pipeline.training_rates(tmp_path) == {"M1": 96.5, "Minf": 100.0}


def test_the_machine_reference_trains_the_experiments_own_model_and_leaves_the_threads_as_they_were(tmp_path, tiny_block):
    """A rate from a few real steps of the tiny experiment's model (no time asserted), and its report line."""
    import torch
    import yaml

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"experiments": {"tiny": tiny_block}}))
    threads = torch.get_num_threads()
    rate = bench_pipeline.reference_rate("tiny", 5, config=config)
    assert rate > 0 and torch.get_num_threads() == threads
    assert bench_pipeline.machine_reference("tiny", 5, 2, config=config) > 0  # two processes at once
    line = bench_pipeline.reference_line(200.0, 90.0, 110.0, "mini")
    assert "90 steps/s before, 110 after" in line and "20,000 reference steps" in line
