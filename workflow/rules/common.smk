# Config validation and named path/param helpers. No rule logic lives here.
import json
from pathlib import Path

from transient_ridge.config import (
    LLC_RUN_SECTIONS,
    TRAINING_SECTIONS,
    ConfigError,
    ExperimentConfig,
    check_experiment,
    format_task_count,
    parse_task_count,
    run_label,
    validate_config,
)
from transient_ridge.llc import calibration_steps
from transient_ridge.figures import FIGURE_GROUPS, FIGURE_NAMES, FIGURE_STORES, figure_reads
from transient_ridge.provenance import ProvenanceError, read_provenance
from transient_ridge.runtime import byte_compile_package

# figures drawn from time series also get an unsmoothed variant under figures/raw/
TIME_SERIES_FIGURES = ["fig1_ood_loss", "fig1_distances", "figB_id_loss", "fig_predictor_fit", "fig1"]


validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
EXPERIMENTS = {
    name: ExperimentConfig.from_config(config, name) for name in config["experiments"]
}


for _experiment in EXPERIMENTS.values():
    check_experiment(_experiment)  # checks across sections (calibration runs, PCA size)


# A run is one M (runs/M16/) or, in an experiment with a list of train seeds, one
# (M, seed) pair (runs/M16/s3/); its rules take the one wildcard `run`.
wildcard_constraints:
    exp="[A-Za-z][A-Za-z0-9_]*",
    M="[0-9]+|inf",
    run="M([0-9]+|inf)(/s[0-9]+)?",
    step="[0-9]+",


# ---- experiment lookups ------------------------------------------------------


# The config sections each stage depends on. A rule's params hold only these, so
# Snakemake's params rerun trigger fires when they change and not otherwise
# (changing the figure smoothing does not retrain anything). Scripts read the
# whole experiment block from `snakemake.config`.
STAGE_SECTIONS = {
    "tasks": ("data", "seeds.tasks", "seeds.probes", "probes"),  # also run_tasks, per run
    "baselines": ("data", "seeds.tasks", "seeds.probes", "probes", "families.ridge_penalty"),
    "evaluate": ("data.noise_variance", "families"),
    "train": TRAINING_SECTIONS,
    "pca": ("pca",),
    "llc_run": LLC_RUN_SECTIONS,
    "llc_calibration": ("llc", "seeds.sgld", "training.steps", "checkpoints"),
    "claims": ("figures",),
}


def stage_settings(stage):
    """An input-free params function: the wildcard experiment's settings for ``stage``."""

    def settings(wildcards):
        return json.loads(EXPERIMENTS[wildcards.exp].fingerprint(STAGE_SECTIONS[stage]))

    return settings


def calibration_settings(wildcards):
    """The llc_calibration params: its sections for the calibration seed alone, so adding a seed changes nothing."""
    cfg = EXPERIMENTS[wildcards.exp]
    return json.loads(cfg.for_seed(calibration_seed(wildcards.exp)).fingerprint(STAGE_SECTIONS["llc_calibration"]))


def run_settings(stage):
    """Like :func:`stage_settings`, for per-run rules: the settings of ``for_run(M, seed)``.

    ``data.M`` is the run's own M and the seeds its own seeds, so adding an M to
    the grid (or a seed to ``seeds.train``) leaves every other run's params
    unchanged and Snakemake's params trigger fires only for the new runs. Rules
    with the wildcard ``M`` instead of ``run`` (run_tasks) narrow the grid only.
    """

    def settings(wildcards):
        cfg = EXPERIMENTS[wildcards.exp]
        if hasattr(wildcards, "run"):
            M, seed = cfg.parse_run(wildcards.run)
        else:
            M, seed = parse_task_count(wildcards.M), None
        return json.loads(cfg.run_fingerprint(STAGE_SECTIONS[stage], M, seed))

    return settings


def run_labels(exp):
    """Every run of an experiment, as its folder under runs/: ['M1', ..., 'Minf'] or ['M1/s1', 'M1/s2', ...]."""
    return EXPERIMENTS[exp].run_labels()


def calibration_seed(exp):
    """The train seed whose runs the LLC calibration measures (None without a seed axis)."""
    return EXPERIMENTS[exp].seeds.calibration_seed


def has_calibration(exp):
    return EXPERIMENTS[exp].llc.calibration is not None


# ---- paths -------------------------------------------------------------------


def tasks_store(exp):
    return f"results/{exp}/data/tasks.zarr"


def run_tasks_store(exp, M):
    """The tasks store of one run: ``tasks.zarr`` as if the grid were just this M."""
    return f"results/{exp}/data/runs/M{M}/tasks.zarr"


def baselines_store(exp):
    return f"results/{exp}/baselines.zarr"


def run_dir(exp, run):
    """A run's folder; ``run`` is its label (``M16``, or ``M16/s3`` with a seed axis)."""
    return f"results/{exp}/runs/{run}"


def outputs_store(exp, run):
    return f"{run_dir(exp, run)}/outputs.zarr"


def llc_run_store(exp, run):
    return f"{run_dir(exp, run)}/llc.zarr"


def pca_store(exp):
    return f"results/{exp}/pca.zarr"


def llc_store(exp):
    return f"results/{exp}/llc.zarr"


def calibration_store(exp):
    return f"results/{exp}/llc_calibration.zarr"


def figure_file(exp, name, ext, raw=False):
    folder = "figures/raw" if raw else "figures"
    return f"results/{exp}/{folder}/{name}.{ext}"


def claims_file(exp, ext):
    return f"results/{exp}/claims.{ext}"


# ---- input functions -----------------------------------------------------------


def get_tasks_store(wildcards):
    return tasks_store(wildcards.exp)


def get_run_tasks_store(wildcards):
    """The run's task data: one store per M, shared by every seed of that M."""
    M, _ = EXPERIMENTS[wildcards.exp].parse_run(wildcards.run)
    return run_tasks_store(wildcards.exp, format_task_count(M))


def get_train_inputs(wildcards):
    """A train job's inputs: its run's tasks store; for a group's leader (training.group_size > 1) every other
    member's too (``group_tasks``, in group order: its job trains them all); for another member, the leader's
    checkpoints (``leader``: its job only publishes what the leader trained and staged for it)."""
    cfg = EXPERIMENTS[wildcards.exp]
    group = cfg.train_group_of(wildcards.run)
    inputs = {"tasks": get_run_tasks_store(wildcards)}
    if len(group) > 1 and wildcards.run == group[0]:
        inputs["group_tasks"] = [run_tasks_store(wildcards.exp, format_task_count(cfg.parse_run(run)[0])) for run in group[1:]]
    elif len(group) > 1:
        inputs["leader"] = f"{run_dir(wildcards.exp, group[0])}/checkpoints"
    return inputs


def get_baselines_store(wildcards):
    return baselines_store(wildcards.exp)


def get_outputs_stores(wildcards):
    return [outputs_store(wildcards.exp, run) for run in run_labels(wildcards.exp)]


def get_llc_run_stores(wildcards):
    return [llc_run_store(wildcards.exp, run) for run in run_labels(wildcards.exp)]


def get_llc_run_inputs(wildcards):
    """A run's checkpoints and tasks, plus the calibration store when llc.epsilon is "auto"."""
    inputs = {
        "checkpoints": f"{run_dir(wildcards.exp, wildcards.run)}/checkpoints",
        "tasks": get_run_tasks_store(wildcards),
    }
    if EXPERIMENTS[wildcards.exp].llc.epsilon_is_auto:
        inputs["calibration"] = calibration_store(wildcards.exp)
    return inputs


def calibration_point_store(exp, run, step):
    return f"results/{exp}/llc_calibration/{run}/step{step}.zarr"


def get_calibration_points(wildcards):
    """One store per calibration point: each llc.calibration.M run (of the first seed) at each calibration step."""
    cfg = EXPERIMENTS[wildcards.exp]
    seed = calibration_seed(wildcards.exp)
    steps = calibration_steps(cfg.for_seed(seed))
    return [calibration_point_store(wildcards.exp, run_label(m, seed), int(step)) for m in cfg.llc.calibration.M for step in steps]


def train_priority(wildcards):
    """Train the runs the LLC calibration measures first: every llc_run waits for the calibration,
    which can start as soon as its own runs are trained, while the other runs train beside it."""
    cfg = EXPERIMENTS[wildcards.exp]
    if cfg.llc.calibration is None:
        return 0
    M, seed = cfg.parse_run(wildcards.run)
    return 1 if M in cfg.llc.calibration.M and seed == calibration_seed(wildcards.exp) else 0


def get_calibration_point_checkpoints(wildcards):
    return f"{run_dir(wildcards.exp, wildcards.run)}/checkpoints"


def get_claims_inputs(wildcards):
    """The stores the claims read; the calibration store too when the experiment has one."""
    exp = wildcards.exp
    inputs = {
        "outputs": get_outputs_stores(wildcards),
        "baselines": baselines_store(exp),
        "pca": pca_store(exp),
        "llc": llc_store(exp),
    }
    if has_calibration(exp):
        inputs["calibration"] = calibration_store(exp)
    return inputs


def figure_group_inputs(names):
    """An input function giving the named stores the figures ``names`` read (required or optional)."""

    def inputs(wildcards):
        exp = wildcards.exp
        stores = {
            "outputs": get_outputs_stores(wildcards),
            "baselines": baselines_store(exp),
            "pca": pca_store(exp),
            "llc": llc_store(exp),
        }
        if has_calibration(exp):
            stores["llc_calibration"] = calibration_store(exp)
        wanted = {key for name in names for key in figure_reads(name)}
        return {key: stores[key] for key in stores if key in wanted}

    return inputs


def figure_inputs(name):
    """An input function giving the named stores figure ``name`` reads."""
    return figure_group_inputs([name])


def figure_group_priority(names):
    """1 for a group that draws from the LLC store (it waits on the last llc_run and the claims' chain runs
    through it), 0 for the others: they run when no llc_run is waiting, so they fill the core that
    the chain last llc_run -> llc -> figures_llc -> claims leaves idle at the end of a run."""
    return 1 if any("llc" in FIGURE_STORES[name] for name in names) else 0


def figure_group_outputs(names):
    """The named outputs of a figure group's rule: ``<name>_pdf`` and ``<name>_png`` (a report item) per figure."""
    outputs = {}
    for name in names:
        outputs[f"{name}_pdf"] = figure_file("{exp}", name, "pdf")
        outputs[f"{name}_png"] = report(
            figure_file("{exp}", name, "png"),
            caption=f"../report/{name}.rst",
            category="{exp}",
            subcategory="figures",
            labels=figure_report_labels(name),
        )
    return outputs


def figure_settings(raw):
    """A params function: plot settings (the experiment's smoothing, or none for raw variants)."""

    def settings(wildcards):
        window = EXPERIMENTS[wildcards.exp].figures.smoothing_window
        M_values = [format_task_count(m) for m in EXPERIMENTS[wildcards.exp].data.M]
        return {"smoothing_window": 1 if raw else window, "raw": raw, "M_values": M_values}

    return settings


def figure_report_labels(name):
    """Report labels of a figure: its name and the provenance stamped into its PNG.

    Snakemake evaluates labels only when it builds the report (``--report``), after
    the figure exists, so reading the file here costs nothing during a run.
    """

    def labels(wildcards, output):
        try:
            stamp = read_provenance(getattr(output, f"{name}_png"))
        except ProvenanceError:  # drawn before figures were stamped: same columns, no values
            stamp = {"git_commit": "not recorded", "git_dirty": False, "rule": "not recorded", "created_utc": "-"}
            stamp.update(stage_settings_sha256="-", versions={})
        dirty = " (dirty)" if stamp["git_dirty"] is True else ""
        commit = f"{stamp['git_commit'][:12]}{dirty}"
        return {
            "figure": name,
            "commit": commit,
            "rule": stamp["rule"],
            "stage settings sha256": stamp["stage_settings_sha256"][:16],
            "made (UTC)": stamp["created_utc"],
            "versions": ", ".join(f"{k} {v}" for k, v in stamp["versions"].items() if k != "python"),
        }

    return labels


def claims_report_labels(wildcards, output):
    """Report labels of claims.md, from claims.json: the verdict counts in one line, then the claims that
    do not hold and those that are not testable, each in its own column (a claim with nothing to compare
    is not testable: it is never listed with the claims the data contradict)."""
    checked = json.loads(Path(output.json).read_text())  # (a line may not start with `report`: a keyword)

    def named(verdict):  # with a seed axis a claim carries per-verdict counts: "name (2 of 3 seeds)"
        names = []
        for claim in checked["claims"]:
            counts = claim.get("counts")
            if counts is None and claim["verdict"] == verdict:
                names.append(claim["name"])
            elif counts is not None and counts[verdict]:
                names.append(f"{claim['name']} ({counts[verdict]} of {sum(counts.values())} seeds)")
        return ", ".join(names) or "none"

    return {"verdict": checked["summary"], "do not hold": named("does not hold"), "not testable": named("not testable")}


# ---- targets ---------------------------------------------------------------------


def experiment_targets(exp):
    """Every final output of an experiment: all figures and the claims.

    The unsmoothed variants (figures/raw/, rules `<name>_raw`) are built on request only.
    """
    if exp not in EXPERIMENTS:
        raise ConfigError(f"experiment {exp!r} is not in the config; known: {sorted(EXPERIMENTS)}")
    # the calibration figure (and store) only where the experiment has an llc.calibration block
    names = [n for n in FIGURE_NAMES if has_calibration(exp) or "llc_calibration" not in FIGURE_STORES[n]]
    targets = [figure_file(exp, name, ext) for name in names for ext in ("pdf", "png")]
    targets += [claims_file(exp, "md"), claims_file(exp, "json")]
    return targets
