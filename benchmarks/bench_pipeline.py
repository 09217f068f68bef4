"""Benchmark and profile: where a pipeline run's wall time goes.

    python benchmarks/bench_pipeline.py                       # run mini (2 cores) in a fresh folder, then profile it
    python benchmarks/bench_pipeline.py --target transient --experiment transient --cores 2
    python benchmarks/bench_pipeline.py --profile /path/to/finished/checkout   # profile a finished run, run nothing

The run mode executes `snakemake -c CORES TARGET --directory <fresh temporary folder>`
(nothing of results/ is reused). Both modes then read Snakemake's log of the run
(`.snakemake/log/*.snakemake.log`, the newest, or `--log`) and the rules'
`benchmark:` files, and print:

- per stage (rule; every figure rule counts as `figures`): jobs, job-seconds (the
  `benchmark:` wall time, i.e. the script alone) and scheduled seconds (start to
  finish in Snakemake's log, start-up included);
- the critical path of the schedule as it happened: from the job that finished last,
  back through the job whose end released it (a dependency, or a core it waited for);
- idle core-seconds: ``cores x wall`` minus the scheduled seconds of every job
  (threads counted), i.e. what a perfect packing could still fill;
- the floor the work sets on N cores: ``max(longest dependency chain, scheduled
  seconds / N)``, the best any schedule of these jobs could do.

The reference for every share is the run's own wall time (Snakemake's log from its
first to its last line), measured in the same run.

The machine's speed moves between runs (on the project's 2-core VM the same training job
ran at 74–130 steps/s within an hour), so the run mode also measures the machine itself,
right before and right after the pipeline: training steps/s of the experiment's own model
and batch, one thread in each of CORES processes at once, as the pipeline's jobs run
(``--reference-steps``, 0 to skip; on that VM a lone process ran 15 % faster than two side by
side). It prints the wall time in those reference steps (wall × mean rate): two runs compare
by that number when the machine moved between them.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
_FIELD = re.compile(r"^    (\w+): (.*)$")


@dataclass
class Job:
    """One job of a Snakemake run, as its log shows it (times in seconds from the run's start)."""

    jobid: int
    rule: str
    start: float
    end: float = float("nan")
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    wildcards: str = ""
    threads: int = 1
    benchmark: str = ""
    deps: list[int] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def label(self) -> str:
        return f"{self.rule}[{self.wildcards}]" if self.wildcards else self.rule

    @property
    def stage(self) -> str:
        return "figures" if self.rule.startswith("fig") else self.rule


def _when(stamp: str) -> float:
    return datetime.strptime(" ".join(stamp.split()), "%a %b %d %H:%M:%S %Y").timestamp()


def parse_log(text: str) -> tuple[list[Job], float]:
    """The jobs of a Snakemake log and the run's wall time (first to last time stamp), in seconds.

    Target rules without a script (``all``, experiment targets) are kept: they take
    no time and close the dependency chains.
    """
    jobs: dict[int, Job] = {}
    stamp: float | None = None
    first: float | None = None
    last = 0.0
    current: Job | None = None
    for line in text.splitlines():
        if match := _STAMP.match(line):
            stamp = _when(match.group(1))
            first = stamp if first is None else first
            last = stamp
            current = None
        elif (match := _RULE.match(line)) and stamp is not None:
            current = Job(jobid=-1, rule=match.group(1), start=stamp)
        elif (match := _FINISHED.match(line)) and stamp is not None:
            jobs[int(match.group(1))].end = stamp
        elif current is not None and (match := _FIELD.match(line)):
            key, value = match.groups()
            if key == "jobid":
                current.jobid = int(value)
                jobs[current.jobid] = current
            elif key in ("input", "output"):
                setattr(current, key + "s", tuple(v.strip() for v in value.split(",")))
            elif key == "wildcards":
                current.wildcards = ", ".join(v.split("=", 1)[1] for v in value.split(", ") if not v.startswith("exp="))
            elif key == "threads":
                current.threads = int(value)
            elif key == "benchmark":
                current.benchmark = value.strip()
    if first is None:
        raise ValueError("no time stamps in the log: is it a Snakemake log of a run that executed jobs?")
    producers = {path: job.jobid for job in jobs.values() for path in job.outputs}
    for job in jobs.values():
        job.start -= first
        job.end -= first
        job.deps = sorted({producers[p] for p in job.inputs if p in producers})
    unfinished = [job.label for job in jobs.values() if job.end != job.end]
    if unfinished:
        raise ValueError(f"jobs without a 'Finished' line (a failed or killed run?): {unfinished[:5]}")
    return sorted(jobs.values(), key=lambda j: (j.start, j.jobid)), last - first


def critical_path(jobs: list[Job]) -> list[tuple[Job, str]]:
    """The chain of jobs that set the wall time, last job first, each with why it started when it did.

    From the job that finished last, step back to the job whose end came last before
    (or at) this job's start: a dependency ("after <dep>"), or any other job, whose end
    freed the core it waited for ("waited for a core"). The reason of the first job is
    "start". The log stamps whole seconds, so short jobs can start and end in the same
    second as their neighbours: a job already on the chain is never stepped to again.
    """
    by_id = {job.jobid: job for job in jobs}
    job = max(jobs, key=lambda j: (j.end, j.start))
    chain: list[tuple[Job, str]] = []
    on_chain = {job.jobid}
    while True:
        earlier = [j for j in jobs if j.end <= job.start and j.jobid not in on_chain]
        if not earlier:
            chain.append((job, "start"))
            return chain
        deps = [by_id[d] for d in job.deps]
        released = max(earlier, key=lambda j: (j.end, j.jobid in job.deps))
        last_dep = max(deps, key=lambda j: j.end) if deps else None
        if last_dep is not None and last_dep.end >= released.end and last_dep.jobid not in on_chain:
            chain.append((job, "after its input"))
            job = last_dep
        else:
            chain.append((job, "waited for a core"))
            job = released
        on_chain.add(job.jobid)


def longest_chain(jobs: list[Job]) -> float:
    """Seconds of the longest dependency chain (scheduled seconds summed): the wall time on unlimited cores."""
    by_id = {job.jobid: job for job in jobs}
    finish: dict[int, float] = {}

    def earliest_finish(jobid: int) -> float:
        if jobid not in finish:
            job = by_id[jobid]
            finish[jobid] = max((earliest_finish(d) for d in job.deps), default=0.0) + job.seconds
        return finish[jobid]

    return max(earliest_finish(job.jobid) for job in jobs)


def read_benchmark(path: Path) -> float | None:
    """The wall seconds of a Snakemake ``benchmark:`` file, or None when it is missing."""
    if not path.exists():
        return None
    with open(path) as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


_RATE = re.compile(r"step (\d+)/\1 .* ([\d.]+) steps/s(?: ETA \S+ s \(in a group of (\d+)\))?")


def training_rates(workdir: Path) -> dict[str, float]:
    """Per train log under ``workdir/logs/*/train/``, the steps/s of the whole run (its last progress line).

    A job that trains a group of runs as one computation (``training.group_size``) counts model
    steps: the group's steps/s times its size, so a rate measures the machine, not the grouping.

    The same job's rate moves with the machine's state (another tenant, the host's load), so it
    tells whether two profiles were measured on a machine in the same state.
    """
    rates = {}
    for path in sorted(workdir.glob("logs/*/train/*.log")):
        found = _RATE.findall(path.read_text())
        if found:
            _, rate, group = found[-1]
            rates[path.stem] = float(rate) * int(group or 1)
    return rates


def profile(workdir: Path, cores: int, log: Path | None = None) -> str:
    """The profile of a finished run in ``workdir`` (module docstring), as printable text."""
    if log is None:
        logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
        if not logs:
            raise SystemExit(f"no Snakemake log under {workdir / '.snakemake' / 'log'}")
        log = logs[-1]
    jobs, wall = parse_log(log.read_text())
    lines = [f"profile of {log} ({len(jobs)} jobs, {cores} cores): {wall:.0f} s wall", ""]

    per_stage: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        per_stage[job.stage].append(job)
    lines += ["| stage | jobs | job-seconds (script) | scheduled seconds | share of cores x wall | from–to (s) |",
              "| --- | --- | --- | --- | --- | --- |"]
    total_scheduled = sum(job.seconds * job.threads for job in jobs)
    total_script = 0.0
    for stage, members in sorted(per_stage.items(), key=lambda item: -sum(j.seconds for j in item[1])):
        script = [read_benchmark(workdir / job.benchmark) for job in members if job.benchmark]
        script_s = sum(s for s in script if s is not None)
        total_script += script_s
        scheduled = sum(job.seconds * job.threads for job in members)
        if scheduled == 0 and not script:
            continue  # target rules
        lines.append(
            f"| {stage} | {len(members)} | {script_s:.0f} | {scheduled:.0f} | {scheduled / (wall * cores):.0%} | "
            f"{min(j.start for j in members):.0f}–{max(j.end for j in members):.0f} |"
        )
    lines.append(f"| all | {len(jobs)} | {total_script:.0f} | {total_scheduled:.0f} | "
                 f"{total_scheduled / (wall * cores):.0%} | 0–{wall:.0f} |")

    idle = cores * wall - total_scheduled
    chain = longest_chain(jobs)
    lines += ["", f"idle core-seconds: {idle:.0f} of {cores * wall:.0f} ({idle / (cores * wall):.0%})",
              f"longest dependency chain: {chain:.0f} s (the wall time on unlimited cores)",
              "floor set by the work: " + ", ".join(
                  f"{n} cores {max(chain, total_scheduled / n):.0f} s" for n in (1, 2, 4, 8)),
              ]
    rates = training_rates(workdir)
    if rates:
        lines.append(f"training steps/s of the runs (the machine's state; compare profiles at like rates): "
                     f"{min(rates.values()):.0f}–{max(rates.values()):.0f} over {len(rates)} runs")
    lines += ["", "critical path (first job first):", "",
              "| job | start (s) | end (s) | seconds | started |", "| --- | --- | --- | --- | --- |"]
    for job, why in reversed(critical_path(jobs)):
        lines.append(f"| {job.label} | {job.start:.0f} | {job.end:.0f} | {job.seconds:.0f} | {why} |")
    return "\n".join(lines)


def reference_rate(experiment: str, steps: int, config: Path = REPO / "config.yaml") -> float:
    """The machine's speed now: training steps/s of ``experiment``'s model at its batch size, one thread.

    The steps are the pipeline's own (fused Adam, batches from the ``(seed, step)`` sampler, the
    model and batch of ``config``'s experiment); 10 warm-up steps are not counted.
    """
    import torch
    import yaml

    from transient_ridge.config import ExperimentConfig
    from transient_ridge.data import sample_batch
    from transient_ridge.train import init_model, new_optimizer, train_step

    block = yaml.safe_load(config.read_text())["experiments"][experiment]
    experiment_cfg = ExperimentConfig.from_dict(experiment, block)
    cfg = experiment_cfg.for_seed(experiment_cfg.seeds.calibration_seed)  # every seed one int
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = init_model(cfg, float("inf"))
        optimizer = new_optimizer(model, cfg)
        data = cfg.data

        def step(i: int) -> None:
            x, y = sample_batch(None, seed=cfg.seeds.train, step=i,
                                batch_size=cfg.training.batch_size, K=data.K, D=data.D,
                                noise_variance=data.noise_variance)
            train_step(model, optimizer, x, y)

        for i in range(10):
            step(i)
        start = time.perf_counter()
        for i in range(steps):
            step(10 + i)
        return steps / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def machine_reference(experiment: str, steps: int, processes: int, config: Path = REPO / "config.yaml") -> float:
    """:func:`reference_rate` in ``processes`` processes at once (one per core, as the pipeline's jobs
    run): their mean steps/s."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        rates = pool.starmap(reference_rate, [(experiment, steps, config)] * processes)
    return sum(rates) / len(rates)


def reference_line(wall: float, before: float, after: float, experiment: str) -> str:
    """The run's wall time against the machine reference measured before and after it (steps/s)."""
    mean = (before + after) / 2
    return (f"machine reference ({experiment}'s training step, one thread per core): {before:.0f} steps/s before, "
            f"{after:.0f} after; the wall time is {wall * mean:,.0f} reference steps "
            f"(= {wall:.0f} s x {mean:.0f} steps/s; compare runs by this when the machine moved)")


def run_pipeline(target: str, cores: int, workdir: Path) -> float:
    """Run ``snakemake -c cores target`` from this repository in ``workdir``; the wall seconds."""
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    command = [snakemake, "-c", str(cores), target, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    total = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stderr[-5000:])
        raise SystemExit(f"pipeline failed; working directory kept at {workdir}")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="all")
    parser.add_argument("--experiment", default="mini")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    parser.add_argument("--profile", type=Path, help="profile the finished run in this folder; run nothing")
    parser.add_argument("--log", type=Path, help="the Snakemake log to read (default: the newest in the folder)")
    parser.add_argument("--reference-steps", type=int, default=500,
                        help="training steps of the machine reference before and after the run (0: none)")
    args = parser.parse_args()
    if args.profile is not None:
        print(profile(args.profile, args.cores, args.log))
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    measure = args.reference_steps > 0
    before = machine_reference(args.experiment, args.reference_steps, args.cores) if measure else None
    total = run_pipeline(args.target, args.cores, workdir)
    after = machine_reference(args.experiment, args.reference_steps, args.cores) if measure else None
    print(f"snakemake -c {args.cores} {args.target}: {total:.0f} s wall in total (measured around the command)")
    if measure:
        print(reference_line(total, before, after, args.experiment))
    print()
    print(profile(workdir, args.cores))
    claims = workdir / "results" / args.experiment / "claims.md"
    if claims.exists():
        print("\n" + claims.read_text().split("\n\n")[1])
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
