"""The paper's findings, checked on an experiment's own stores.

Each claim is a small pure function of one seed's stores (:class:`ClaimInputs`)
returning a :class:`Claim` with the measured numbers and whether it holds, or
``None`` where the experiment cannot test it (no M = ∞ run, say). ``CLAIM_CHECKS``
lists them in report order: adding a claim is one function and one line there.
:func:`check_claims` maps them over one seed's stores; with a seed axis,
:func:`check_claims_over_seeds` maps that over every seed and
:func:`summarize_over_seeds` says, per claim, in how many seeds it holds. The
``claims`` rule writes them as Markdown and JSON; a claim that does not hold is
reported, never raised.

Thresholds (module constants) are part of the claims' wording in the README.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
import xarray as xr

from .config import format_task_count
from .llc import (
    SOUND,
    SPIKE_RATIO,
    Estimates,
    dmmse_like_runs,
    final_estimate,
    read_estimates,
    tradeoff_claim,
    tradeoff_markdown,
    transience_prediction_claim,
)
from .plotting import smooth
from .predictors import per_token_mse
from .seeds import seeds_of, select_seed

__all__ = [
    "Claim",
    "ClaimInputs",
    "ClaimCheck",
    "CLAIM_CHECKS",
    "SeedClaim",
    "TransienceMeasure",
    "measure_transience",
    "ridge_dmmse_gap",
    "ood_losses",
    "smallest_M_ends_at_dmmse",
    "infinite_M_ends_at_ridge",
    "pca_separates_predictors",
    "llc_grows_with_M_for_dmmse_runs",
    "transient_ridge",
    "loss_complexity_tradeoff",
    "tradeoff_predicts_transience",
    "check_claims",
    "check_claims_over_seeds",
    "summarize_over_seeds",
    "claims_markdown",
    "seed_claims_markdown",
    "claims_json",
    "seed_claims_json",
]

DMMSE_FAR_BELOW = 0.25  # final dist_dmmse <= 0.25 * dist_ridge counts as "far below"
RIDGE_OOD_TOLERANCE = 0.05  # M = inf ends within 5 % of ridge's OOD loss
TRANSIENT_OOD_RISE = 0.20  # OOD loss rises >= 20 % above its interior minimum
TRANSIENT_RIDGE_RISE = 0.10  # distance to ridge rises >= 10 % above its interior minimum
DMMSE_STILL_FALLING = 0.8  # distance to dMMSE at the end <= 0.8 x its value at the OOD minimum
# "behaves like ridge first" means coming at least halfway to ridge, measured against
# the distance between ridge and dMMSE_M themselves:
APPROACH_MAX = 0.5  # closest smoothed distance to ridge <= 0.5 x the ridge-dMMSE_M gap
OOD_DEPTH_MAX = 0.5  # OOD minimum at most halfway from ridge's OOD loss to dMMSE_M's
PCA_SEPARATION = 2.0  # ridge-to-dMMSE gap >= 2x the median final-point-to-own-predictor distance


@dataclass
class Claim:
    """One finding: a name, its wording, whether it holds, and the numbers behind it."""

    name: str
    statement: str
    holds: bool
    evidence: dict = field(default_factory=dict)


@dataclass
class TransienceMeasure:
    """Transience numbers of one run (smoothed series).

    ``rises``: the rise rules (interior minima, OOD rise, ridge rise, distance to
    dMMSE still falling); ``approach`` = ``ridge_min / ridge_dmmse_gap`` and
    ``ood_depth`` = ``(ood_min − ridge_ood_loss) / (dmmse_ood_loss − ridge_ood_loss)``
    (``None`` when the baselines lack what they need); ``approaches_ridge``: both at
    most :data:`APPROACH_MAX` / :data:`OOD_DEPTH_MAX`; ``is_transient``: both rules.
    """

    M: float
    ood_min: float
    ood_min_step: int
    ood_final: float
    ood_rise: float
    ridge_min: float
    ridge_min_step: int
    ridge_final: float
    ridge_rise: float
    dmmse_at_ood_min: float
    dmmse_final: float
    dmmse_final_over_at_ood_min: float
    ridge_dmmse_gap: float | None
    ridge_ood_loss: float | None
    dmmse_ood_loss: float | None
    approach: float | None
    ood_depth: float | None
    rises: bool
    approaches_ridge: bool
    is_transient: bool


def _rise(series: np.ndarray) -> tuple[float, int, float, float]:
    """(min, argmin, final, final/min − 1) with the minimum taken before the end."""
    index = int(np.argmin(series))
    minimum, final = float(series[index]), float(series[-1])
    return minimum, index, final, final / minimum - 1.0 if minimum > 0 else math.inf


def ood_losses(baselines: xr.Dataset, M: float) -> tuple[float | None, float | None]:
    """``(ridge's, dMMSE_M's)`` OOD loss, each averaged over tokens (``None`` where the store lacks it)."""
    ridge = float(baselines["loss_ridge_ood"].mean()) if "loss_ridge_ood" in baselines else None
    dmmse = None
    if "loss_dmmse_ood" in baselines and "M" in baselines["loss_dmmse_ood"].dims and M in baselines["M"].values:
        dmmse = float(baselines["loss_dmmse_ood"].sel(M=M).mean())
    return ridge, dmmse


def _ratio(numerator: float, denominator: float | None) -> float | None:
    return None if denominator is None or not denominator > 0 else numerator / denominator


def measure_transience(
    outputs: xr.Dataset, smoothing_window: int, baselines: xr.Dataset | None = None
) -> TransienceMeasure:
    """Transience of one run: OOD loss and distance to ridge fall then rise, distance to dMMSE keeps
    falling, and the run first came at least halfway to ridge.

    Args:
        outputs: one run's ``outputs.zarr`` (``loss_ood``, ``dist_ridge``, ``dist_dmmse`` over ``step``).
        smoothing_window: odd number of checkpoints of the centred moving average.
        baselines: ``baselines.zarr``, for the ridge–dMMSE_M gap (``ridge_id``, ``dmmse_id``)
            and the OOD losses (``loss_ridge_ood``, ``loss_dmmse_ood``). Without it (or
            without those variables) ``approach`` / ``ood_depth`` are ``None`` and the
            run is not counted as transient.
    """
    M = float(outputs.attrs["M"])
    steps = outputs["step"].values
    ood = smooth(outputs["loss_ood"].values, smoothing_window)
    ridge = smooth(outputs["dist_ridge"].values, smoothing_window)
    dmmse = smooth(outputs["dist_dmmse"].values, smoothing_window)
    ood_min, ood_i, ood_final, ood_rise = _rise(ood)
    ridge_min, ridge_i, ridge_final, ridge_rise = _rise(ridge)
    # "keeps falling" on a noisy series: well below, at the end, its value at the OOD minimum
    dmmse_at_ood_min, dmmse_final = float(dmmse[ood_i]), float(dmmse[-1])
    dmmse_ratio = dmmse_final / dmmse_at_ood_min if dmmse_at_ood_min > 0 else math.inf
    interior = 0 < ood_i < len(steps) - 1 and 0 < ridge_i < len(steps) - 1
    rises = bool(
        interior
        and ood_rise >= TRANSIENT_OOD_RISE
        and ridge_rise >= TRANSIENT_RIDGE_RISE
        and dmmse_ratio <= DMMSE_STILL_FALLING
    )
    gap = ridge_dmmse_gap(baselines, M) if baselines is not None else None
    ridge_ood, dmmse_ood = ood_losses(baselines, M) if baselines is not None else (None, None)
    approach = _ratio(ridge_min, gap)
    depth = None if ridge_ood is None or dmmse_ood is None else _ratio(ood_min - ridge_ood, dmmse_ood - ridge_ood)
    approaches = approach is not None and depth is not None and approach <= APPROACH_MAX and depth <= OOD_DEPTH_MAX
    return TransienceMeasure(
        M=M,
        ood_min=ood_min,
        ood_min_step=int(steps[ood_i]),
        ood_final=ood_final,
        ood_rise=ood_rise,
        ridge_min=ridge_min,
        ridge_min_step=int(steps[ridge_i]),
        ridge_final=ridge_final,
        ridge_rise=ridge_rise,
        dmmse_at_ood_min=dmmse_at_ood_min,
        dmmse_final=dmmse_final,
        dmmse_final_over_at_ood_min=dmmse_ratio,
        ridge_dmmse_gap=gap,
        ridge_ood_loss=ridge_ood,
        dmmse_ood_loss=dmmse_ood,
        approach=approach,
        ood_depth=depth,
        rises=rises,
        approaches_ridge=bool(approaches),
        is_transient=bool(rises and approaches),
    )


def ridge_dmmse_gap(baselines: xr.Dataset, M: float) -> float | None:
    """Distance between ridge and dMMSE_M themselves on the q_M probe set (``None`` without the predictions).

    Measured like a run's ``dist_ridge``: mean over sequences and tokens of the squared
    prediction difference. A run whose distance to ridge never falls well below this gap
    is never nearer to ridge than dMMSE_M is, so its "rise" away from ridge is bounded.
    """
    if "ridge_id" not in baselines or "dmmse_id" not in baselines or M not in baselines["M"].values:
        return None
    at_M = baselines.sel(M=M)
    return float(per_token_mse(at_M["ridge_id"].values, at_M["dmmse_id"].values).mean())


@dataclass(frozen=True, eq=False)  # datasets do not compare to a bool
class ClaimInputs:
    """One seed's stores, what every claim function reads.

    Attributes:
        outputs: ``M → outputs.zarr`` dataset of that run (one seed: dims ``(step, …)``).
        baselines: ``baselines.zarr``.
        pca: ``pca.zarr`` (``trajectory(M, step, pc)``: one seed's view).
        llc: ``llc.zarr`` (``llc_mean(M, step)``: one seed's view).
        smoothing_window: odd number of checkpoints smoothed over (``figures.smoothing_window``).
        min_transient_runs: how many intermediate M the transient claim needs.
    """

    outputs: Mapping[float, xr.Dataset]
    baselines: xr.Dataset
    pca: xr.Dataset
    llc: xr.Dataset
    smoothing_window: int = 1
    min_transient_runs: int = 2

    @property
    def finite(self) -> list[float]:
        """The finite M with a run, ascending."""
        return [M for M in sorted(self.outputs) if math.isfinite(M)]

    @cached_property
    def llc_estimates(self) -> Estimates:
        """Every LLC estimate of this seed (``llc.read_estimates``), read once for the claims that need it."""
        return read_estimates(self.llc)

    @cached_property
    def transience(self) -> list[TransienceMeasure]:
        """:func:`measure_transience` of every intermediate M, measured once for the claims that need it."""
        return [measure_transience(self.outputs[M], self.smoothing_window, self.baselines) for M in self.finite[1:]]


ClaimCheck = Callable[[ClaimInputs], Claim | None]


def smallest_M_ends_at_dmmse(s: ClaimInputs) -> Claim | None:
    """The smallest M ends far nearer dMMSE_M than ridge."""
    if not s.finite:
        return None
    small = s.finite[0]
    final = s.outputs[small].isel(step=-1)
    ratio = float(final["dist_dmmse"] / final["dist_ridge"])
    return Claim(
        "smallest_M_ends_at_dmmse",
        f"the smallest M ({format_task_count(small)}) ends at dMMSE_M: final distance to dMMSE "
        f"<= {DMMSE_FAR_BELOW} x distance to ridge",
        ratio <= DMMSE_FAR_BELOW,
        {"M": small, "dist_dmmse": float(final["dist_dmmse"]), "dist_ridge": float(final["dist_ridge"]), "ratio": ratio},
    )


def infinite_M_ends_at_ridge(s: ClaimInputs) -> Claim | None:
    """M = ∞ ends with ridge's OOD loss."""
    if math.inf not in s.outputs:
        return None
    ridge_ood = float(s.baselines["loss_ridge_ood"].mean())
    final_ood = float(s.outputs[math.inf]["loss_ood"][-1])
    excess = final_ood / ridge_ood - 1.0
    return Claim(
        "infinite_M_ends_at_ridge",
        f"M = inf ends at ridge: final OOD loss within {RIDGE_OOD_TOLERANCE:.0%} of ridge's",
        excess <= RIDGE_OOD_TOLERANCE,
        {"final_ood_loss": final_ood, "ridge_ood_loss": ridge_ood, "excess": excess},
    )


def pca_separates_predictors(s: ClaimInputs) -> Claim | None:
    """In PC1–PC2 ridge and dMMSE of the smallest M sit apart, and the extreme runs end at their own."""
    if not s.finite or math.inf not in s.outputs:
        return None
    small = s.finite[0]
    pca = s.pca
    projection = pca["predictor_projection"].sel(pc=[1, 2])
    ridge_point = projection.sel(predictor="ridge").values
    dmmse_point = projection.sel(predictor=f"dmmse_M{format_task_count(small)}").values
    gap = float(np.linalg.norm(ridge_point - dmmse_point))
    end_small = pca["trajectory"].sel(M=small, pc=[1, 2]).isel(step=-1).values
    end_inf = pca["trajectory"].sel(M=math.inf, pc=[1, 2]).isel(step=-1).values
    small_to_own = float(np.linalg.norm(end_small - dmmse_point))
    small_to_ridge = float(np.linalg.norm(end_small - ridge_point))
    inf_to_own = float(np.linalg.norm(end_inf - ridge_point))
    inf_to_dmmse = float(np.linalg.norm(end_inf - dmmse_point))
    spread = float(np.median([small_to_own, inf_to_own]))
    holds = gap >= PCA_SEPARATION * spread and small_to_own < small_to_ridge and inf_to_own < inf_to_dmmse
    return Claim(
        "pca_separates_predictors",
        f"in PC1-PC2, ridge and dMMSE_M{format_task_count(small)} sit apart (gap >= {PCA_SEPARATION} x the median "
        "distance of final points to their own predictor) and the M="
        f"{format_task_count(small)} and M=inf trajectories end nearer their own predictor",
        bool(holds),
        {
            "gap_ridge_dmmse": gap,
            "final_M_small_to_dmmse": small_to_own,
            "final_M_small_to_ridge": small_to_ridge,
            "final_M_inf_to_ridge": inf_to_own,
            "final_M_inf_to_dmmse": inf_to_dmmse,
            "explained_variance_pc1_pc2": [float(v) for v in pca["explained_variance_ratio"].values[:2]],
        },
    )


def llc_grows_with_M_for_dmmse_runs(s: ClaimInputs) -> Claim | None:
    """The final LLC of every dMMSE-like run exceeds the smallest M's, every compared estimate sound."""
    finite = s.finite
    if len(finite) < 2:
        return None
    finals = {M: final_estimate(s.llc_estimates, M) for M in finite}
    final_llc = {M: finals[M].mean for M in finite}
    small = finite[0]
    dmmse_like = [M for M in dmmse_like_runs(s.outputs) if M != small]
    peaks = {M: finals[M].trace_peak for M in finite}
    compared = [small, *dmmse_like]
    spiked = [M for M in compared if peaks[M] is not None and peaks[M] > SPIKE_RATIO]
    not_sound = [M for M in compared if finals[M].status not in (SOUND, None) or not math.isfinite(final_llc[M])]
    holds = (
        bool(dmmse_like)
        and not spiked
        and not not_sound
        and all(final_llc[M] > final_llc[small] for M in dmmse_like)
    )
    return Claim(
        "llc_grows_with_M_for_dmmse_runs",
        f"the final-model LLC of every dMMSE-like run with M > {format_task_count(small)} exceeds that of "
        f"M = {format_task_count(small)}, every compared estimate sound (transient_ridge.llc.estimate_status: "
        f"no SGLD chain diverged, the chains stay below {SPIKE_RATIO:.0f} x their start loss, and they converged)",
        holds,
        {
            "final_llc": {format_task_count(M): final_llc[M] for M in finite},
            "final_status": {format_task_count(M): finals[M].status for M in finite},
            "final_trace_peak_over_init_loss": {format_task_count(M): peaks[M] for M in finite},
            "dmmse_like_runs": [format_task_count(M) for M in dmmse_like],
            "spiked_runs": [format_task_count(M) for M in spiked],
            "unsound_runs": [format_task_count(M) for M in not_sound],
        },
    )


def transient_ridge(s: ClaimInputs) -> Claim:
    """At least ``min_transient_runs`` intermediate M come close to ridge first, then specialise."""
    measures = s.transience
    transient = [m for m in measures if m.is_transient]
    return Claim(
        "transient_ridge",
        f"at least {s.min_transient_runs} intermediate M are transient: they first come at least halfway to "
        f"ridge (closest distance to ridge <= {APPROACH_MAX} x the ridge-dMMSE_M gap, and OOD minimum <= "
        f"{OOD_DEPTH_MAX} of the way from ridge's OOD loss to dMMSE_M's), then the OOD loss rises >= "
        f"{TRANSIENT_OOD_RISE:.0%} after an interior minimum, the distance to ridge rises >= "
        f"{TRANSIENT_RIDGE_RISE:.0%} after an interior minimum, and the distance to dMMSE keeps falling "
        f"(at the end <= {DMMSE_STILL_FALLING} x its value at the OOD minimum; series smoothed over "
        f"{s.smoothing_window} checkpoints)",
        len(transient) >= s.min_transient_runs,
        {
            "transient_M": [format_task_count(m.M) for m in transient],
            "runs": {format_task_count(m.M): asdict(m) for m in measures},
        },
    )


def _observed_transience(s: ClaimInputs) -> dict[float, bool]:
    """Intermediate M → whether :func:`transient_ridge` finds the run transient."""
    return {m.M: m.is_transient for m in s.transience}


def loss_complexity_tradeoff(s: ClaimInputs) -> Claim | None:
    """Carroll et al.'s account: dMMSE-like runs end with lower loss than ridge, transient ones with higher LLC."""
    if math.inf not in s.outputs or len(s.finite) < 2:
        return None
    return tradeoff_claim(s.llc_estimates, s.outputs, _observed_transience(s))


def tradeoff_predicts_transience(s: ClaimInputs) -> Claim | None:
    """The account's prediction of which intermediate M are transient, against the observed verdicts."""
    if math.inf not in s.outputs or len(s.finite) < 2:
        return None
    return transience_prediction_claim(s.llc_estimates, s.outputs, _observed_transience(s))


# The claims in report order. A claim function takes one seed's stores and returns
# a Claim, or None where the experiment cannot test it; adding one is one line here.
CLAIM_CHECKS: tuple[ClaimCheck, ...] = (
    smallest_M_ends_at_dmmse,
    infinite_M_ends_at_ridge,
    pca_separates_predictors,
    llc_grows_with_M_for_dmmse_runs,
    transient_ridge,
    loss_complexity_tradeoff,
    tradeoff_predicts_transience,
)


def check_claims(
    outputs: Mapping[float, xr.Dataset],
    baselines: xr.Dataset,
    pca: xr.Dataset,
    llc: xr.Dataset,
    *,
    smoothing_window: int = 1,
    min_transient_runs: int = 2,
    checks: tuple[ClaimCheck, ...] = CLAIM_CHECKS,
) -> list[Claim]:
    """Check every finding on one seed's stores (``outputs`` maps M to a run's outputs dataset)."""
    inputs = ClaimInputs(outputs, baselines, pca, llc, smoothing_window, min_transient_runs)
    return [claim for check in checks if (claim := check(inputs)) is not None]


def check_claims_over_seeds(
    outputs: Mapping[float, xr.Dataset],
    baselines: xr.Dataset,
    pca: xr.Dataset,
    llc: xr.Dataset,
    *,
    smoothing_window: int = 1,
    min_transient_runs: int = 2,
    checks: tuple[ClaimCheck, ...] = CLAIM_CHECKS,
) -> dict[int, list[Claim]]:
    """:func:`check_claims` on each seed's view of stores stacked over seeds (``seed`` dims).

    ``outputs`` are runs stacked by :func:`transient_ridge.seeds.runs_by_M`; ``pca``
    and ``llc`` have a ``seed`` dim too. Returns ``seed → claims``, seeds ascending.
    """
    seeds = seeds_of(outputs, pca, llc)
    if seeds is None:
        raise ValueError("no store has a 'seed' dim; use check_claims for an experiment without a seed axis")
    return {
        seed: check_claims(
            select_seed(outputs, seed), baselines, select_seed(pca, seed), select_seed(llc, seed),
            smoothing_window=smoothing_window, min_transient_runs=min_transient_runs, checks=checks,
        )
        for seed in seeds
    }


@dataclass
class SeedClaim:
    """One finding over seeds: in how many of them it holds, and each seed's :class:`Claim`.

    ``holds`` is true when it holds in every seed.
    """

    name: str
    statement: str
    holds: bool
    holds_in: int
    seeds: list[int]
    per_seed: dict[int, Claim]

    @property
    def verdict(self) -> str:
        """``"holds in 2 of 3 seeds"``."""
        return f"holds in {self.holds_in} of {len(self.seeds)} seeds"


def summarize_over_seeds(per_seed: Mapping[int, list[Claim]]) -> list[SeedClaim]:
    """Per claim (in report order), the seeds where it holds out of the seeds that test it."""
    names: list[str] = []
    for claims in per_seed.values():
        names += [c.name for c in claims if c.name not in names]
    summary = []
    for name in names:
        found = {seed: c for seed, claims in per_seed.items() for c in claims if c.name == name}
        held = sum(c.holds for c in found.values())
        summary.append(
            SeedClaim(
                name=name,
                statement=next(iter(found.values())).statement,
                holds=held == len(found),
                holds_in=held,
                seeds=sorted(found),
                per_seed=dict(sorted(found.items())),
            )
        )
    return summary


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


_RUNS_NOTE = (
    "(approach: the closest smoothed distance to ridge over the ridge–dMMSE gap, the distance between the two "
    "predictors themselves on q_M data; 1 means the run never got nearer to ridge than dMMSE_M is. OOD depth: "
    "where the smoothed OOD minimum lies from ridge's OOD loss (0) to dMMSE_M's (1). A run is transient when it "
    f"rises by the rules above and both ratios are at most {APPROACH_MAX} / {OOD_DEPTH_MAX}; 'rises only': the "
    "rise rules hold, the approach does not.)"
)


def _cell(value: float | None, fmt: str = ".2f") -> str:
    return "—" if value is None else format(value, fmt)


def _verdict(m: Mapping) -> str:
    if m["is_transient"]:
        return "yes"
    return "rises only" if m.get("rises") else "no"


def _runs_table(rows: list[tuple[str, int | None, Mapping]]) -> list[str]:
    """The transient table: one row per (M label, seed or None, :class:`TransienceMeasure` as a dict)."""
    with_seed = any(seed is not None for _, seed, _ in rows)
    head = ["M", *(["seed"] if with_seed else []), "OOD min (step)", "OOD depth", "OOD rise", "ridge dist min (step)",
            "ridge–dMMSE gap", "ridge dist min / gap (approach)", "ridge rise", "dMMSE end / at OOD min", "transient"]
    lines = ["", "| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for label, seed, m in rows:
        cells = [
            label, *([str(seed)] if with_seed else []),
            f"{m['ood_min']:.4g} ({m['ood_min_step']})", _cell(m.get("ood_depth")), f"{m['ood_rise']:+.1%}",
            f"{m['ridge_min']:.4g} ({m['ridge_min_step']})", _cell(m.get("ridge_dmmse_gap"), ".4g"),
            _cell(m.get("approach")), f"{m['ridge_rise']:+.1%}", f"{m['dmmse_final_over_at_ood_min']:.3f}", _verdict(m),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", _RUNS_NOTE]


def claims_markdown(experiment: str, claims: list[Claim], extra_lines: list[str] | None = None) -> str:
    """A human-readable report: one section per claim with its numbers, then ``extra_lines``."""
    lines = [f"# Claims for experiment `{experiment}`", ""]
    held = sum(c.holds for c in claims)
    lines += [f"{held} of {len(claims)} claims hold.", ""]
    lines += ["| claim | holds |", "| --- | --- |"]
    lines += [f"| {c.name} | {'yes' if c.holds else 'NO'} |" for c in claims]
    for claim in claims:
        lines += ["", f"## {claim.name}: {'holds' if claim.holds else 'does not hold'}", "", claim.statement, ""]
        for key, value in claim.evidence.items():
            if key == "runs":
                lines += _runs_table([(label, None, m) for label, m in value.items()])
            elif key in ("tradeoff_rows", "prediction_rows"):
                lines += tradeoff_markdown(claim.evidence)
            else:
                lines.append(f"- {key}: {_fmt(value)}")
    lines += extra_lines or []
    return "\n".join(lines) + "\n"


def seed_claims_markdown(experiment: str, claims: list[SeedClaim], extra_lines: list[str] | None = None) -> str:
    """The report of an experiment with a seed axis: per claim "holds in k of n seeds" and each seed's numbers."""
    seeds = sorted({seed for c in claims for seed in c.seeds})
    every = sum(c.holds for c in claims)
    lines = [f"# Claims for experiment `{experiment}`", "",
             f"Train seeds: {', '.join(map(str, seeds))}. Each claim is checked on each seed's runs; the table says "
             "in how many seeds it holds.", "",
             f"{every} of {len(claims)} claims hold in every seed.", "",
             "| claim | holds in | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "| --- | --- | " + " | ".join("---" for _ in seeds) + " |"]
    for c in claims:
        cells = [("yes" if c.per_seed[s].holds else "NO") if s in c.per_seed else "—" for s in seeds]
        lines.append(f"| {c.name} | {c.holds_in} of {len(c.seeds)} seeds | " + " | ".join(cells) + " |")
    for c in claims:
        lines += ["", f"## {c.name}: {c.verdict}", "", c.statement, ""]
        tables = ("runs", "tradeoff_rows", "prediction_rows")
        keys = [k for k in next(iter(c.per_seed.values())).evidence if k not in tables]
        lines += ["| | " + " | ".join(f"seed {s}" for s in c.seeds) + " |",
                  "| --- | " + " | ".join("---" for _ in c.seeds) + " |",
                  "| holds | " + " | ".join("yes" if c.per_seed[s].holds else "no" for s in c.seeds) + " |"]
        for key in keys:
            lines.append(f"| {key} | " + " | ".join(_fmt(c.per_seed[s].evidence.get(key)) for s in c.seeds) + " |")
        runs = {s: c.per_seed[s].evidence["runs"] for s in c.seeds if "runs" in c.per_seed[s].evidence}
        if runs:
            labels = list(dict.fromkeys(label for per in runs.values() for label in per))
            lines += ["", "Per M: " + "; ".join(
                f"M = {label} transient in {sum(bool(runs[s].get(label, {}).get('is_transient')) for s in runs)} "
                f"of {len(runs)} seeds" for label in labels) + "." if labels else ""]
            lines += _runs_table([(label, s, runs[s][label]) for label in labels for s in runs if label in runs[s]])
        for seed in c.seeds:
            evidence = c.per_seed[seed].evidence
            if "tradeoff_rows" in evidence or "prediction_rows" in evidence:
                lines += ["", f"Seed {seed}:", *tradeoff_markdown(evidence)]
    lines += extra_lines or []
    return "\n".join(lines) + "\n"


def _clean(value: object) -> object:
    """JSON-safe: non-finite floats as strings (``"inf"``), numpy scalars as Python ones, keys as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def claims_json(experiment: str, claims: list[Claim], extra: dict | None = None) -> str:
    """Machine-readable claims (``inf`` written as the string ``"inf"``), plus ``extra`` top-level keys."""
    payload = {"experiment": experiment, "claims": [_clean(asdict(c)) for c in claims], **_clean(extra or {})}
    return json.dumps(payload, indent=2, sort_keys=True)


def seed_claims_json(experiment: str, claims: list[SeedClaim], extra: dict | None = None) -> str:
    """:func:`claims_json` over seeds: per claim ``holds`` (in every seed), ``holds_in``, ``seeds`` and
    ``per_seed`` (seed → ``{holds, evidence}``); ``seeds`` at the top level."""
    rows = [
        {
            "name": c.name, "statement": c.statement, "holds": c.holds, "holds_in": c.holds_in, "seeds": c.seeds,
            "per_seed": {seed: {"holds": claim.holds, "evidence": claim.evidence} for seed, claim in c.per_seed.items()},
        }
        for c in claims
    ]
    seeds = sorted({seed for c in claims for seed in c.seeds})
    payload = {"experiment": experiment, "seeds": seeds, "claims": _clean(rows), **_clean(extra or {})}
    return json.dumps(payload, indent=2, sort_keys=True)
