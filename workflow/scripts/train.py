"""Rule `train`: train one run (one M, and one train seed with a seed axis), resuming from
runs/{run}/.resume/ if present.

With `training.group_size` > 1 the runs are trained in groups (ExperimentConfig.train_groups):
the group's first run (its leader) trains every member as one batched computation and
publishes its own outputs; each other member's job then only moves what the leader staged
in its .resume/ into place (no torch import, a second or so). A member whose outputs were
not staged under its current settings is trained alone, so every run's job can always
finish it.

torch is imported only where a run is trained.
"""

import logging
from pathlib import Path

from transient_ridge.config import TRAINING_SECTIONS, ExperimentConfig, format_task_count
from transient_ridge.provenance import start_job
from transient_ridge.run_files import publish_staged_run
from transient_ridge.runtime import configure_logging


def published_from_leader(cfg: ExperimentConfig, run: str, leader: str, run_dir: Path) -> bool:
    """Publish ``run``'s outputs if its group's leader staged them under the current settings."""
    M, seed = cfg.parse_run(run)
    narrowed = cfg.for_seed(seed)
    fingerprint = narrowed.run_fingerprint(TRAINING_SECTIONS, M)
    if publish_staged_run(run_dir, fingerprint=fingerprint, M=M, step=cfg.training.steps, label=f"M={format_task_count(M)}"):
        logging.info("%s: trained by the train job of %s (its group's leader); outputs published", run, leader)
        return True
    logging.info("%s: nothing staged by %s under the current settings; training it alone", run, leader)
    return False


def train(cfg: ExperimentConfig, runs: list[str], tasks_paths: list[str], run_dirs: list[Path], threads: int) -> None:
    """Train ``runs`` (one, or a group with its leader first), each from its run tasks store; publish the first."""
    from transient_ridge.runtime import claim_device, set_threads
    from transient_ridge.store import open_dataset
    from transient_ridge.tasks import tasks_from_dataset
    from transient_ridge.train import ProbeInputs, train_run
    from transient_ridge.train_group import GroupMember, train_group

    set_threads(threads)
    members = []
    for run, tasks_path, run_dir in zip(runs, tasks_paths, run_dirs):
        M, seed = cfg.parse_run(run)
        dataset = open_dataset(tasks_path)
        members.append(
            GroupMember(cfg.for_seed(seed), M, tasks_from_dataset(dataset), ProbeInputs.from_tasks_dataset(dataset, M), run_dir)
        )
    with claim_device() as device:
        logging.info("%s: training %s on %s with %d thread(s)", cfg.name, ", ".join(runs), device, threads)
        if len(members) == 1:
            member = members[0]
            train_run(member.cfg, member.M, member.tasks, member.probes, member.run_dir, device=device)
        else:
            train_group(members, device=device, publish=[0])


def main(experiment: str, block: dict, run: str, inputs, checkpoints_dir: str, threads: int) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    group = cfg.train_group_of(run)
    run_dir = Path(checkpoints_dir).parent
    runs_root = run_dir.parents[len(Path(run).parts) - 1]  # results/{exp}/runs
    if run != group[0]:
        if not published_from_leader(cfg, run, group[0], run_dir):
            train(cfg, [run], [inputs.tasks], [run_dir], threads)
        return
    tasks_paths = [inputs.tasks, *inputs.get("group_tasks", [])]  # the leader's first, as in `group`
    train(cfg, group, tasks_paths, [runs_root / member for member in group], threads)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        snakemake.wildcards.run,
        snakemake.input,
        snakemake.output.checkpoints,
        snakemake.threads,
    )
