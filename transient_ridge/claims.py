"""The paper's findings, checked on an experiment's own stores.

Each claim is a pure function of the stores returning a :class:`Claim` with
the measured numbers and whether it holds. The ``claims`` rule writes them as
Markdown and JSON; a claim that does not hold is reported, never raised.

Thresholds (module constants) are part of the claims' wording in the README.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

from .config import format_task_count
from .llc import SOUND, SPIKE_RATIO, tradeoff_claim, tradeoff_markdown, transience_prediction_claim
from .llc import final_estimate as final_llc_estimate
from .plotting import smooth
from .predictors import per_token_mse

__all__ = [
    "Claim",
    "TransienceMeasure",
    "measure_transience",
    "ridge_dmmse_gap",
    "check_claims",
    "claims_markdown",
    "claims_json",
]

DMMSE_FAR_BELOW = 0.25  # final dist_dmmse <= 0.25 * dist_ridge counts as "far below"
RIDGE_OOD_TOLERANCE = 0.05  # M = inf ends within 5 % of ridge's OOD loss
TRANSIENT_OOD_RISE = 0.20  # OOD loss rises >= 20 % above its interior minimum
TRANSIENT_RIDGE_RISE = 0.10  # distance to ridge rises >= 10 % above its interior minimum
DMMSE_STILL_FALLING = 0.8  # distance to dMMSE at the end <= 0.8 x its value at the OOD minimum
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
    """Transience numbers of one run (smoothed series)."""

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
    is_transient: bool


def _rise(series: np.ndarray) -> tuple[float, int, float, float]:
    """(min, argmin, final, final/min − 1) with the minimum taken before the end."""
    index = int(np.argmin(series))
    minimum, final = float(series[index]), float(series[-1])
    return minimum, index, final, final / minimum - 1.0 if minimum > 0 else math.inf


def measure_transience(outputs: xr.Dataset, smoothing_window: int) -> TransienceMeasure:
    """Transience of one run: OOD loss and distance to ridge fall then rise, distance to dMMSE keeps falling."""
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
    transient = bool(
        interior
        and ood_rise >= TRANSIENT_OOD_RISE
        and ridge_rise >= TRANSIENT_RIDGE_RISE
        and dmmse_ratio <= DMMSE_STILL_FALLING
    )
    return TransienceMeasure(
        M=float(outputs.attrs["M"]),
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
        is_transient=transient,
    )


def ridge_dmmse_gap(baselines: xr.Dataset, M: float) -> float | None:
    """Distance between ridge and dMMSE_M themselves on the q_M probe set (``None`` without the predictions).

    Measured like a run's ``dist_ridge``: mean over sequences and tokens of the squared
    prediction difference. A run whose distance to ridge never falls well below this gap
    is never nearer to ridge than dMMSE_M is, so its "rise" away from ridge is bounded.
    """
    if "ridge_id" not in baselines or "dmmse_id" not in baselines:
        return None
    at_M = baselines.sel(M=M)
    return float(per_token_mse(at_M["ridge_id"].values, at_M["dmmse_id"].values).mean())


def check_claims(
    outputs: dict[float, xr.Dataset],
    baselines: xr.Dataset,
    pca: xr.Dataset,
    llc: xr.Dataset,
    *,
    smoothing_window: int = 1,
    min_transient_runs: int = 2,
) -> list[Claim]:
    """Check every finding on one experiment's stores (``outputs`` maps M to a run's outputs dataset)."""
    M_values = sorted(outputs)
    finite = [M for M in M_values if math.isfinite(M)]
    claims: list[Claim] = []

    if finite:
        small = finite[0]
        final = outputs[small].isel(step=-1)
        ratio = float(final["dist_dmmse"] / final["dist_ridge"])
        claims.append(
            Claim(
                "smallest_M_ends_at_dmmse",
                f"the smallest M ({format_task_count(small)}) ends at dMMSE_M: final distance to dMMSE "
                f"<= {DMMSE_FAR_BELOW} x distance to ridge",
                ratio <= DMMSE_FAR_BELOW,
                {"M": small, "dist_dmmse": float(final["dist_dmmse"]), "dist_ridge": float(final["dist_ridge"]), "ratio": ratio},
            )
        )

    if math.inf in outputs:
        ridge_ood = float(baselines["loss_ridge_ood"].mean())
        final_ood = float(outputs[math.inf]["loss_ood"][-1])
        excess = final_ood / ridge_ood - 1.0
        claims.append(
            Claim(
                "infinite_M_ends_at_ridge",
                f"M = inf ends at ridge: final OOD loss within {RIDGE_OOD_TOLERANCE:.0%} of ridge's",
                excess <= RIDGE_OOD_TOLERANCE,
                {"final_ood_loss": final_ood, "ridge_ood_loss": ridge_ood, "excess": excess},
            )
        )

    if finite and math.inf in outputs:
        small = finite[0]
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
        claims.append(
            Claim(
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
        )

    if len(finite) >= 2:
        finals = {M: final_llc_estimate(llc, M) for M in finite}
        final_llc = {M: finals[M][0] for M in finite}
        small = finite[0]
        dmmse_like = [
            M
            for M in finite[1:]
            if float(outputs[M]["dist_dmmse"][-1]) < float(outputs[M]["dist_ridge"][-1])
        ]
        peaks = {M: finals[M][3] for M in finite}
        compared = [small, *dmmse_like]
        spiked = [M for M in compared if peaks[M] is not None and peaks[M] > SPIKE_RATIO]
        not_sound = [M for M in compared if finals[M][1] not in (SOUND, None) or not math.isfinite(final_llc[M])]
        holds = (
            bool(dmmse_like)
            and not spiked
            and not not_sound
            and all(final_llc[M] > final_llc[small] for M in dmmse_like)
        )
        claims.append(
            Claim(
                "llc_grows_with_M_for_dmmse_runs",
                f"the final-model LLC of every dMMSE-like run with M > {format_task_count(small)} exceeds that of "
                f"M = {format_task_count(small)}, every compared estimate sound (transient_ridge.llc.estimate_status: "
                f"no SGLD chain diverged, the chains stay below {SPIKE_RATIO:.0f} x their start loss, and they converged)",
                holds,
                {
                    "final_llc": {format_task_count(M): final_llc[M] for M in finite},
                    "final_status": {format_task_count(M): finals[M][1] for M in finite},
                    "final_trace_peak_over_init_loss": {format_task_count(M): peaks[M] for M in finite},
                    "dmmse_like_runs": [format_task_count(M) for M in dmmse_like],
                    "spiked_runs": [format_task_count(M) for M in spiked],
                    "unsound_runs": [format_task_count(M) for M in not_sound],
                },
            )
        )

    measures = [measure_transience(outputs[M], smoothing_window) for M in finite[1:]]
    transient = [m for m in measures if m.is_transient]
    claims.append(
        Claim(
            "transient_ridge",
            f"at least {min_transient_runs} intermediate M are transient: OOD loss rises >= "
            f"{TRANSIENT_OOD_RISE:.0%} after an interior minimum, the distance to ridge rises >= "
            f"{TRANSIENT_RIDGE_RISE:.0%} after an interior minimum, and the distance to dMMSE keeps falling "
            f"(at the end <= {DMMSE_STILL_FALLING} x its value at the OOD minimum; series smoothed over "
            f"{smoothing_window} checkpoints)",
            len(transient) >= min_transient_runs,
            {
                "transient_M": [format_task_count(m.M) for m in transient],
                "runs": {
                    format_task_count(m.M): {**asdict(m), "ridge_dmmse_gap": ridge_dmmse_gap(baselines, m.M)}
                    for m in measures
                },
            },
        )
    )
    observed = {m.M: m.is_transient for m in measures}
    claims += [tradeoff_claim(llc, outputs, observed), transience_prediction_claim(llc, outputs, observed)]
    return claims


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


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
                lines += ["", "| M | OOD min (step) | OOD rise | ridge dist min (step) | ridge rise | dMMSE end / at OOD min "
                          "| ridge–dMMSE gap | ridge dist min / gap | transient |",
                          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
                for label, m in value.items():
                    gap = m.get("ridge_dmmse_gap")
                    gap_cells = "— | —" if not gap else f"{gap:.4g} | {m['ridge_min'] / gap:.2f}"
                    lines.append(
                        f"| {label} | {m['ood_min']:.4g} ({m['ood_min_step']}) | {m['ood_rise']:+.1%} | "
                        f"{m['ridge_min']:.4g} ({m['ridge_min_step']}) | {m['ridge_rise']:+.1%} | "
                        f"{m['dmmse_final_over_at_ood_min']:.3f} | {gap_cells} | {'yes' if m['is_transient'] else 'no'} |"
                    )
                lines += ["", "(ridge–dMMSE gap: the distance between the two predictors themselves on q_M data; "
                          "a ratio near 1 means the run never got nearer to ridge than dMMSE_M is.)"]
            elif key in ("tradeoff_rows", "prediction_rows"):
                lines += tradeoff_markdown(claim.evidence)
            else:
                lines.append(f"- {key}: {_fmt(value)}")
    lines += extra_lines or []
    return "\n".join(lines) + "\n"


def claims_json(experiment: str, claims: list[Claim], extra: dict | None = None) -> str:
    """Machine-readable claims (``inf`` written as the string ``"inf"``), plus ``extra`` top-level keys."""

    def clean(value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    payload = {"experiment": experiment, "claims": [clean(asdict(c)) for c in claims], **clean(extra or {})}
    return json.dumps(payload, indent=2, sort_keys=True)
