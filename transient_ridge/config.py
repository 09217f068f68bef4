"""Experiment configuration: schema validation and frozen per-stage dataclasses.

``config.yaml`` is validated against ``workflow/schemas/config.schema.yaml``
before any job starts (:func:`validate_config`); each stage then turns its
block into a frozen dataclass (:meth:`ExperimentConfig.from_dict`) that
rejects unknown keys, so a typo can never be silently ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "PRECISIONS",
    "DataConfig",
    "SeedConfig",
    "ProbeConfig",
    "ModelShape",
    "ScheduleConfig",
    "TrainingConfig",
    "CheckpointConfig",
    "EvaluationConfig",
    "PCAConfig",
    "LLCCalibrationConfig",
    "LLCConfig",
    "sgld_steps",
    "LogGrid",
    "FamiliesConfig",
    "FigureConfig",
    "ExperimentConfig",
    "check_experiment",
    "parse_task_count",
    "format_task_count",
    "run_label",
    "parse_run_label",
    "load_yaml",
    "validate_config",
    "TRAINING_SECTIONS",
    "LLC_RUN_SECTIONS",
]


# training.precision values (applied by transient_ridge.precision; defined here so that the
# config stays importable without torch)
PRECISIONS = ("fp32", "tf32", "bf16")


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the key."""


def parse_task_count(value: int | float | str) -> float:
    """Turn a config M value (an integer or ``"inf"``) into a float (``math.inf`` for ∞)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"inf", "infinity", "∞"}:
            return math.inf
        if not text.isdigit():
            raise ConfigError(f"M={value!r} must be an integer >= 1 or 'inf'")
        value = int(text)
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return math.inf
    if int(value) != value or value < 1:
        raise ConfigError(f"M={value!r} must be an integer >= 1 or 'inf'")
    return float(int(value))


def format_task_count(M: float) -> str:
    """Label of a task count as used in run names and wildcards: ``16`` or ``inf``."""
    return "inf" if math.isinf(M) else str(int(M))


def run_label(M: float, seed: int | None = None) -> str:
    """The name of a run's folder under ``runs/``: ``M16`` (no seed axis) or ``M16/s3`` (train seed 3)."""
    label = f"M{format_task_count(M)}"
    return label if seed is None else f"{label}/s{int(seed)}"


def parse_run_label(label: str) -> tuple[float, int | None]:
    """Inverse of :func:`run_label`: ``"M16/s3"`` → ``(16.0, 3)``, ``"Minf"`` → ``(inf, None)``."""
    head, _, tail = label.partition("/")
    if not head.startswith("M") or (tail and not (tail.startswith("s") and tail[1:].isdigit())):
        raise ConfigError(f"run label {label!r} must look like M16, Minf, M16/s3 or Minf/s3")
    return parse_task_count(head[1:]), int(tail[1:]) if tail else None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file into plain Python objects."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def _describe_allowed(schema: Mapping[str, Any]) -> str:
    """A short human description of what a (sub)schema allows."""
    if "description" in schema and ("oneOf" in schema or "anyOf" in schema):
        return str(schema["description"])
    parts = []
    if "type" in schema:
        parts.append(str(schema["type"]))
    if "enum" in schema:
        parts.append("one of " + ", ".join(map(str, schema["enum"])))
    if "const" in schema:
        parts.append(f"exactly {schema['const']!r}")
    for key, symbol in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in schema:
            parts.append(f"{symbol} {schema[key]}")
    if "minItems" in schema:
        parts.append(f"at least {schema['minItems']} item(s)")
    if "properties" in schema:
        parts.append("keys: " + ", ".join(schema["properties"]))
    return ", ".join(parts) if parts else "see workflow/schemas/config.schema.yaml"


def validate_config(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Validate a whole config mapping against the JSON schema.

    Raises :class:`ConfigError` whose message names every offending key (as a
    dotted path such as ``experiments.mini.data.D``), the bad value and the
    allowed range. Returns ``None`` when the config is valid.
    """
    import jsonschema

    schema = load_yaml(schema_path)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    lines = []
    for error in errors:
        key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
        if error.validator == "additionalProperties":
            lines.append(f"{key}: {error.message} (allowed {_describe_allowed(error.schema)})")
        else:
            lines.append(
                f"{key}: {error.instance!r} is not allowed ({error.message}); "
                f"allowed: {_describe_allowed(error.schema)}"
            )
    raise ConfigError(
        f"invalid configuration ({len(errors)} problem(s)); fix config.yaml or your --configfile:\n  "
        + "\n  ".join(lines)
    )


def _build(cls: type, mapping: Mapping[str, Any] | None, where: str) -> Any:
    """Construct a frozen dataclass from a mapping, rejecting unknown keys."""
    mapping = dict(mapping or {})
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys: {sorted(names)}")
    try:
        return cls(**mapping)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except ConfigError as exc:
        # a section's own check names its key from the section on ("seeds.init: ..."):
        # put the experiment in front ("experiments.x.seeds.init: ...")
        parent, _, section = where.rpartition(".")
        if parent and (str(exc).startswith(f"{section}.") or str(exc).startswith(f"{section}:")):
            raise ConfigError(f"{parent}.{exc}") from exc
        raise


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Task distribution: dimension D, K pairs per sequence, label noise σ², the M grid."""

    D: int
    K: int
    noise_variance: float
    M: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "M", tuple(parse_task_count(m) for m in self.M))
        if self.D < 1 or self.K < 1 or self.noise_variance < 0:
            raise ConfigError(f"data: need D >= 1, K >= 1, noise_variance >= 0; got {self}")

    @property
    def max_finite_M(self) -> int:
        """Length of the task sequence to draw: the largest finite M (at least 1)."""
        finite = [int(m) for m in self.M if math.isfinite(m)]
        return max(finite, default=1)


SeedList = int | tuple[int, ...]


def _seed_tuple(value: Any, key: str) -> int | tuple[int, ...]:
    """An int stays an int; a list becomes a tuple of ints (the seed axis)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"seeds.{key}: [] is empty; give one seed (an int) or a list of at least one seed")
        return tuple(int(v) for v in value)
    return int(value)


@dataclasses.dataclass(frozen=True)
class SeedConfig:
    """Independent seeds for each source of randomness.

    ``train`` may be a list of distinct seeds: then the experiment has a seed
    axis, one run per (M, train seed), living at ``runs/M{M}/s{seed}/``.
    ``init`` and ``sgld`` are then either one int shared by every train seed or a
    list of the same length, paired with the train seeds position by position.
    ``tasks`` and ``probes`` are always one int: every seed sees the same tasks
    and probe sets, so runs of different seeds differ only in their batches
    (and, where paired, their initialisation and SGLD chains).
    """

    tasks: int
    train: SeedList
    init: SeedList
    probes: int
    sgld: SeedList

    def __post_init__(self) -> None:
        for key in ("train", "init", "sgld"):
            object.__setattr__(self, key, _seed_tuple(getattr(self, key), key))
        if isinstance(self.train, tuple) and len(set(self.train)) != len(self.train):
            raise ConfigError(
                f"seeds.train: {list(self.train)} repeats a seed; the train seeds name the runs "
                "(runs/M{M}/s{seed}/), so each must appear once"
            )
        for key in ("init", "sgld"):
            value = getattr(self, key)
            if not isinstance(value, tuple):
                continue
            if not isinstance(self.train, tuple):
                raise ConfigError(
                    f"seeds.{key}: {list(value)} is a list but seeds.train={self.train} is one seed; "
                    f"give seeds.{key} as one int, or seeds.train as a list of {len(value)} seeds"
                )
            if len(value) != len(self.train):
                raise ConfigError(
                    f"seeds.{key}: {list(value)} has {len(value)} seed(s) but seeds.train {list(self.train)} has "
                    f"{len(self.train)}; a list is paired with the train seeds position by position, so give "
                    f"{len(self.train)} seeds, or one int shared by every train seed"
                )

    @property
    def has_seed_axis(self) -> bool:
        """Whether ``train`` is a list: runs live at ``runs/M{M}/s{seed}/`` and stores gain a ``seed`` dim."""
        return isinstance(self.train, tuple)

    @property
    def train_seeds(self) -> tuple[int, ...]:
        """Every train seed, in config order (one for an experiment without a seed axis)."""
        return self.train if isinstance(self.train, tuple) else (self.train,)

    @property
    def calibration_seed(self) -> int | None:
        """The train seed whose runs the LLC calibration measures: the first (``None`` without a seed axis)."""
        return self.train_seeds[0] if self.has_seed_axis else None

    def for_seed(self, seed: int) -> SeedConfig:
        """The seeds of the runs with train seed ``seed``: every field one int."""
        seeds = self.train_seeds
        if seed not in seeds:
            raise ConfigError(f"seeds.train: seed {seed} is not one of the train seeds {list(seeds)}")
        i = seeds.index(seed)

        def pick(value: SeedList) -> int:
            return value[i] if isinstance(value, tuple) else value

        return SeedConfig(tasks=self.tasks, train=seed, init=pick(self.init), probes=self.probes, sgld=pick(self.sgld))

    def require_single(self, purpose: str) -> None:
        """Raise unless every seed is one int (what one run, one calibration or one batch stream needs)."""
        lists = [key for key in ("train", "init", "sgld") if isinstance(getattr(self, key), tuple)]
        if lists:
            raise ConfigError(
                f"{purpose} needs one seed per source, but seeds.{lists[0]} is a list "
                f"{list(getattr(self, lists[0]))}; narrow the config to one run first "
                "(ExperimentConfig.for_seed(seed) or for_run(M, seed))"
            )


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    """Sizes of the fixed probe sets (sequences)."""

    root_sequences: int
    ood_sequences: int
    id_sequences: int
    dmmse_chunk: int = 1024


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """Transformer shape knobs from config (D and K come from :class:`DataConfig`)."""

    n_layer: int
    d_model: int
    n_head: int
    d_mlp: int

    def __post_init__(self) -> None:
        if self.n_head >= 1 and self.d_model % self.n_head:
            divisors = [h for h in range(1, min(self.d_model, 64) + 1) if self.d_model % h == 0]
            raise ConfigError(
                f"model.d_model: {self.d_model} is not divisible by model.n_head={self.n_head} (each head gets "
                f"d_model / n_head dimensions); allowed n_head for this d_model: {divisors}, or change d_model"
            )


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule; see :func:`transient_ridge.schedule.learning_rate`."""

    kind: str
    warmup_steps: int = 0
    pct_start: float = 0.3
    final_lr_fraction: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimizer (Adam), schedule and run length."""

    steps: int
    batch_size: int
    lr: float
    schedule: ScheduleConfig
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    log_every: int = 500
    resume_every: int = 1000
    precision: str = "fp32"  # fp32 | tf32 | bf16: see transient_ridge.precision
    group_size: int = 1  # runs one train job trains as one batched computation (transient_ridge.train_group)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"training.precision: {self.precision!r} is not allowed; allowed: {', '.join(PRECISIONS)} "
                "(fp32 is the reference; see transient_ridge/precision.py)"
            )
        if isinstance(self.schedule, Mapping):
            object.__setattr__(self, "schedule", _build(ScheduleConfig, self.schedule, "training.schedule"))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoint schedule (linear ∪ log) and which checkpoints keep weights."""

    linear_interval: int
    log_count: int
    weights_every: int = 1


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation batching."""

    batch_size: int = 4096


@dataclasses.dataclass(frozen=True)
class PCAConfig:
    """Joint trajectory PCA."""

    n_components: int = 4


@dataclasses.dataclass(frozen=True)
class LLCCalibrationConfig:
    """ε (× γ) grid swept on a few runs at a few LLC checkpoints (default: the first, the middle and the last).

    ``num_chains``, ``burnin_time`` and ``draw_time`` default to the ``llc`` ones
    (the chains ``llc_run`` will use); ``steps`` to the first, middle and last
    LLC checkpoint.
    """

    M: tuple[float, ...]
    epsilon: tuple[float, ...]
    gamma: tuple[float, ...]
    num_chains: int | None = None
    burnin_time: float | None = None
    draw_time: float | None = None
    steps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "M", tuple(parse_task_count(m) for m in self.M))
        object.__setattr__(self, "epsilon", tuple(sorted(float(e) for e in self.epsilon)))
        object.__setattr__(self, "gamma", tuple(float(g) for g in self.gamma))
        if self.steps is not None:
            object.__setattr__(self, "steps", tuple(sorted({int(s) for s in self.steps})))


AUTO = "auto"  # llc.epsilon: take the step size the llc_calibration rule chose


def sgld_steps(epsilon: float, gamma: float, time: float, steps_between_draws: int = 1) -> int:
    """SGLD steps (or draws, with ``steps_between_draws``) that span ``time`` units of ``1/(εγ)`` steps.

    The localisation term relaxes the chains at a rate of about ``εγ`` per step,
    so chains of equal SGLD time are equally settled whatever ε is (docs/llc.md).
    ``ceil(time / (ε γ) / steps_between_draws)``, at least 1; rounded to 9
    significant digits first so that ``5 / (1e-3 · 100)`` gives 50, not 51.
    """
    if not (epsilon > 0 and gamma > 0 and time > 0 and steps_between_draws >= 1):
        raise ConfigError(
            f"SGLD time needs epsilon > 0, gamma > 0, time > 0, steps_between_draws >= 1; got epsilon={epsilon!r}, "
            f"gamma={gamma!r}, time={time!r}, steps_between_draws={steps_between_draws!r}"
        )
    return max(1, math.ceil(float(f"{time / (epsilon * gamma) / steps_between_draws:.9g}")))


@dataclasses.dataclass(frozen=True)
class LLCConfig:
    """SGLD settings of the LLC estimate (Lau et al. 2023; Hoogland et al. 2024).

    ``epsilon`` is a number, or ``"auto"``: then the ``llc_calibration`` rule
    chooses it from ``calibration.epsilon`` (docs/llc.md, the calibration rule).
    Chains are sized in SGLD time: ``burnin_time`` and ``draw_time`` are in
    units of ``1/(ε γ)`` steps (:meth:`chain_length`). The checkpoints are
    ``steps`` (an explicit list) or ``num_checkpoints`` log-spaced ones.
    """

    epsilon: float | str
    gamma: float
    nbeta: float
    num_samples: int
    num_chains: int
    burnin_time: float
    draw_time: float
    batch_size: int
    num_checkpoints: int | None = None
    steps: tuple[int, ...] | None = None
    steps_between_draws: int = 1
    calibration: LLCCalibrationConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.calibration, Mapping):
            object.__setattr__(
                self, "calibration", _build(LLCCalibrationConfig, self.calibration, "llc.calibration")
            )
        if (self.steps is None) == (self.num_checkpoints is None):
            raise ConfigError(
                "llc: give exactly one of `steps` (an explicit list of checkpoint steps) and `num_checkpoints` "
                f"(log-spaced); got steps={self.steps!r}, num_checkpoints={self.num_checkpoints!r}"
            )
        if self.steps is not None:
            object.__setattr__(self, "steps", tuple(sorted({int(s) for s in self.steps})))
        if not self.gamma > 0:
            raise ConfigError(f"llc.gamma: {self.gamma!r} must be > 0 (chains are sized in units of 1/(epsilon*gamma))")
        if self.epsilon == AUTO:
            if self.calibration is None:
                raise ConfigError(
                    "llc.epsilon: 'auto' needs an llc.calibration block (M, epsilon grid, gamma) to choose from; "
                    "add one or give epsilon as a number"
                )
            if self.gamma not in self.calibration.gamma:
                raise ConfigError(
                    f"llc.calibration.gamma: {list(self.calibration.gamma)} must include llc.gamma={self.gamma:g}, "
                    "the gamma at which 'auto' chooses epsilon"
                )
        elif isinstance(self.epsilon, str) or not self.epsilon > 0:
            raise ConfigError(f"llc.epsilon: {self.epsilon!r} must be a number > 0 or 'auto'")
        if self.batch_size > self.num_samples:
            raise ConfigError(
                f"llc.batch_size: {self.batch_size} is more than llc.num_samples={self.num_samples} (SGLD minibatches "
                f"are drawn from those n samples); allowed: 1 <= batch_size <= {self.num_samples}"
            )

    @property
    def epsilon_is_auto(self) -> bool:
        return self.epsilon == AUTO

    def chain_length(self, epsilon: float, gamma: float | None = None) -> tuple[int, int]:
        """``(num_burnin, num_draws)`` in steps at this ε (and γ, default ``self.gamma``): :func:`sgld_steps`."""
        g = self.gamma if gamma is None else gamma
        return (
            sgld_steps(epsilon, g, self.burnin_time),
            sgld_steps(epsilon, g, self.draw_time, self.steps_between_draws),
        )

    def sgld_settings(self) -> dict[str, float | int | str]:
        """The settings recorded as store attributes (everything but the checkpoint choice and calibration grid)."""
        settings = dataclasses.asdict(self)
        for key in ("calibration", "num_checkpoints", "steps"):
            settings.pop(key)
        settings["n"] = self.num_samples
        settings["beta"] = self.nbeta / self.num_samples
        return settings


@dataclasses.dataclass(frozen=True)
class LogGrid:
    """``num`` values log-spaced from ``min`` to ``max`` (both included; ``num = 1`` needs ``min = max``)."""

    min: float
    max: float
    num: int

    def __post_init__(self) -> None:
        if not (self.min > 0 and self.max >= self.min and self.num >= 1) or (self.num == 1 and self.max != self.min):
            raise ConfigError(
                f"grid min={self.min!r}, max={self.max!r}, num={self.num!r}: need 0 < min <= max and num >= 1 "
                "(num = 1 only with min = max)"
            )

    @property
    def values(self) -> tuple[float, ...]:
        """The grid, ascending, geometric, with both ends exact."""
        if self.num == 1:
            return (float(self.min),)
        ratio = float(self.max) / float(self.min)
        inner = [float(self.min) * ratio ** (i / (self.num - 1)) for i in range(1, self.num - 1)]
        return (float(self.min), *inner, float(self.max))


@dataclasses.dataclass(frozen=True)
class FamiliesConfig:
    """Grids of the predictor families fitted to every checkpoint (:mod:`transient_ridge.families`).

    ``ridge_penalty``: λ of ridge_λ (the noise variance σ² is always added, so ridge
    itself is a member); ``gd_step_size``: η of GD-k on the prefix loss
    ``‖Y − Xw‖² / 2n``; ``gd_steps``: the step counts k (each ≥ 1).
    """

    ridge_penalty: LogGrid
    gd_step_size: LogGrid
    gd_steps: tuple[int, ...]

    def __post_init__(self) -> None:
        for key in ("ridge_penalty", "gd_step_size"):
            value = getattr(self, key)
            if isinstance(value, Mapping):
                object.__setattr__(self, key, _build(LogGrid, value, f"families.{key}"))
        steps = tuple(sorted({int(k) for k in self.gd_steps}))
        if not steps or steps[0] < 1:
            raise ConfigError(f"families.gd_steps: {list(self.gd_steps)} must be a non-empty list of integers >= 1")
        object.__setattr__(self, "gd_steps", steps)

    def penalties(self, noise_variance: float) -> tuple[float, ...]:
        """The ridge_λ grid with ``σ² = noise_variance`` added, ascending."""
        return tuple(sorted(set(self.ridge_penalty.values) | {float(noise_variance)}))


@dataclasses.dataclass(frozen=True)
class FigureConfig:
    """Plot settings (raw data always stays in the stores)."""

    smoothing_window: int = 1


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One experiment block of ``config.yaml``, turned into frozen stage configs."""

    name: str
    description: str
    data: DataConfig
    seeds: SeedConfig
    probes: ProbeConfig
    model: ModelShape
    training: TrainingConfig
    checkpoints: CheckpointConfig
    evaluation: EvaluationConfig
    pca: PCAConfig
    llc: LLCConfig
    families: FamiliesConfig
    figures: FigureConfig
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, name: str, block: Mapping[str, Any]) -> ExperimentConfig:
        """Build from the ``experiments.<name>`` block of the config."""
        sections = {
            "data": DataConfig,
            "seeds": SeedConfig,
            "probes": ProbeConfig,
            "model": ModelShape,
            "training": TrainingConfig,
            "checkpoints": CheckpointConfig,
            "evaluation": EvaluationConfig,
            "pca": PCAConfig,
            "llc": LLCConfig,
            "families": FamiliesConfig,
            "figures": FigureConfig,
        }
        unknown = sorted(set(block) - set(sections) - {"description"})
        if unknown:
            raise ConfigError(f"experiments.{name}: unknown key(s) {unknown}")
        missing = sorted(set(sections) - set(block))
        if missing:
            raise ConfigError(f"experiments.{name}: missing section(s) {missing}")
        built = {
            key: _build(section_cls, block[key], f"experiments.{name}.{key}")
            for key, section_cls in sections.items()
        }
        return cls(name=name, description=str(block.get("description", "")), raw=dict(block), **built)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], name: str) -> ExperimentConfig:
        """Pick experiment ``name`` out of a whole config mapping."""
        experiments = config.get("experiments", {})
        if name not in experiments:
            raise ConfigError(
                f"experiment {name!r} is not in the config; known experiments: {sorted(experiments)}"
            )
        return cls.from_dict(name, experiments[name])

    def fingerprint(self, sections: tuple[str, ...]) -> str:
        """JSON of just these config sections (dotted paths allowed, e.g. ``seeds.train``).

        Used to decide whether a stage's earlier work (a resume state) is still valid:
        only the settings the stage depends on count.
        """
        picked = {}
        for path in sections:
            node: Any = self.raw
            for part in path.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            picked[path] = node
        return json.dumps(picked, sort_keys=True, default=str)

    def for_seed(self, seed: int | None) -> ExperimentConfig:
        """This experiment narrowed to the runs of one train seed: every seed one int.

        ``seeds.train`` becomes ``seed``, and ``seeds.init`` / ``seeds.sgld`` the
        seed paired with it (or the shared one). ``None`` gives the experiment
        unchanged (what stages that do not depend on the train seeds use, such as
        the task data), and so does the one train seed of an experiment without a
        seed axis. A run's settings come from this narrowed config, so adding a
        seed to the list leaves the other seeds' runs untouched.
        """
        if seed is None or (not self.seeds.has_seed_axis and seed == self.seeds.train):
            return self
        try:
            single = self.seeds.for_seed(int(seed))
        except ConfigError as exc:
            raise ConfigError(f"experiments.{self.name}.{exc}") from exc
        block = copy.deepcopy(self.raw)
        block["seeds"] = {**block["seeds"], **{key: getattr(single, key) for key in ("train", "init", "sgld")}}
        return ExperimentConfig.from_dict(self.name, block)

    def for_run(self, M: float, seed: int | None = None) -> ExperimentConfig:
        """This experiment narrowed to the one run with task diversity ``M`` (``data.M = [M]``)
        and, with a seed axis, train seed ``seed`` (:meth:`for_seed`).

        What one run sees does not depend on the rest of the grid: ``T_M`` is a
        prefix of the task sequence and each M's probe set has its own seed
        (``tests/test_data.py`` checks both on the stored data). So a run's
        inputs and settings can be built from this narrowed config, and adding
        an M (or a seed) leaves the other runs untouched.
        """
        if M not in self.data.M:
            raise ConfigError(f"experiments.{self.name}: M={format_task_count(M)} is not in data.M {list(self.data.M)}")
        narrowed = self.for_seed(seed)
        block = copy.deepcopy(narrowed.raw)
        block["data"] = {**block["data"], "M": ["inf" if math.isinf(M) else int(M)]}
        return ExperimentConfig.from_dict(self.name, block)

    def run_fingerprint(self, sections: tuple[str, ...], M: float, seed: int | None = None) -> str:
        """:meth:`fingerprint` of :meth:`for_run`: the settings one run depends on."""
        return self.for_run(M, seed).fingerprint(sections)

    def runs(self) -> list[tuple[float, int | None]]:
        """Every run as ``(M, train seed)``, M-major; the seed is ``None`` without a seed axis."""
        seeds: tuple[int | None, ...] = self.seeds.train_seeds if self.seeds.has_seed_axis else (None,)
        return [(M, seed) for M in self.data.M for seed in seeds]

    def run_labels(self) -> list[str]:
        """Every run's folder name under ``runs/`` (:func:`run_label`), M-major."""
        return [run_label(M, seed) for M, seed in self.runs()]

    def parse_run(self, label: str) -> tuple[float, int | None]:
        """``(M, seed)`` of a run label of this experiment; names the layout it expects otherwise."""
        M, seed = parse_run_label(label)
        if (M, seed) not in self.runs():
            raise ConfigError(
                f"experiments.{self.name}: run {label!r} is not one of its runs {self.run_labels()} "
                f"(data.M {[format_task_count(m) for m in self.data.M]}, seeds.train "
                f"{list(self.seeds.train) if self.seeds.has_seed_axis else self.seeds.train}; with a list of train "
                "seeds runs live at runs/M{M}/s{seed}/, with one seed at runs/M{M}/)"
            )
        return M, seed

    def train_groups(self) -> list[list[str]]:
        """The runs each ``train`` job trains, as run labels: groups of at most ``training.group_size``.

        The runs are split into as few groups as that allows, as even in size as possible, the
        smaller groups first. The runs the LLC calibration measures come first, so they train in
        the smallest group, which finishes first: the calibration (which every ``llc_run`` waits
        for) starts while the other groups still train. The rest follow in :meth:`run_labels`
        order. The first run of a group is its leader: its job trains the whole group; every other
        run's job publishes what the leader staged for it.
        """
        labels = self.run_labels()
        first = []
        if self.llc.calibration is not None:
            seed = self.seeds.calibration_seed
            first = [run_label(M, seed) for M in self.llc.calibration.M if run_label(M, seed) in labels]
        ordered = first + [label for label in labels if label not in first]
        count = -(-len(ordered) // self.training.group_size)  # ceil: the fewest groups of at most group_size
        base, larger = divmod(len(ordered), count)
        sizes = [base] * (count - larger) + [base + 1] * larger
        starts = [sum(sizes[:i]) for i in range(count)]
        return [ordered[start : start + size] for start, size in zip(starts, sizes)]

    def train_group_of(self, label: str) -> list[str]:
        """The group (leader first) that run ``label`` trains in; ``[label]`` with ``group_size`` 1."""
        self.parse_run(label)
        return next(group for group in self.train_groups() if label in group)

    def to_json(self) -> str:
        """The experiment's raw config block as JSON (stored in every output's attrs)."""
        return json.dumps({"name": self.name, **self.raw}, sort_keys=True, default=str)


def check_experiment(cfg: ExperimentConfig) -> None:
    """Checks across sections that the schema cannot express; raises :class:`ConfigError` naming each key.

    - every ``llc.calibration.M`` is a run of ``data.M``;
    - ``pca.n_components`` <= min(rows, features) of the joint trajectory PCA: rows
      = runs × checkpoint steps, features = ``probes.root_sequences`` × ``data.K``.

    Called once per experiment by ``workflow/rules/common.smk`` before any job starts.
    """
    from .schedule import checkpoint_steps

    where = f"experiments.{cfg.name}"
    problems = []
    calibration = cfg.llc.calibration
    if calibration is not None:
        unknown = [format_task_count(m) for m in calibration.M if m not in cfg.data.M]
        if unknown:
            problems.append(
                f"{where}.llc.calibration.M: {unknown} are not in data.M "
                f"{[format_task_count(m) for m in cfg.data.M]}; calibrate on runs of the grid"
            )
    steps = len(checkpoint_steps(cfg.training.steps, cfg.checkpoints.linear_interval, cfg.checkpoints.log_count))
    rows, features = len(cfg.data.M) * steps, cfg.probes.root_sequences * cfg.data.K
    if cfg.pca.n_components > min(rows, features):
        problems.append(
            f"{where}.pca.n_components: {cfg.pca.n_components} is more than min(rows, features) = "
            f"min({len(cfg.data.M)} runs x {steps} checkpoints, {cfg.probes.root_sequences} root sequences x "
            f"K={cfg.data.K}) = {min(rows, features)}; allowed: 1..{min(rows, features)}"
        )
    if problems:
        raise ConfigError("; ".join(problems))


# ---- what each stage's results depend on (the workflow's params; torch-free) ----

# The config sections a training run depends on: a resume state written under other
# values of these is discarded; other sections (LLC, figures, ...) may change freely.
TRAINING_SECTIONS = (
    "data",
    "seeds.tasks",
    "seeds.train",
    "seeds.init",
    "seeds.probes",
    "probes",
    "model",
    "training",
    "checkpoints",
    "evaluation",
)


# The config an llc_run job depends on (its rule's params, so Snakemake's params
# trigger fires on these only): every SGLD setting but the calibration grid. With
# `epsilon: auto` the chosen epsilon reaches llc_run as an input (the calibration
# store), so a changed grid reruns llc_run through that edge; with an explicit
# epsilon the grid does not matter to it.
LLC_RUN_SECTIONS = (
    *(f"llc.{field.name}" for field in dataclasses.fields(LLCConfig) if field.name != "calibration"),
    "seeds.sgld",
    "training.steps",
    "checkpoints",
)
