"""What claims.md says about the LLC: estimates and their diagnostics, the calibration, the tradeoff.

Everything here reads the LLC stores through :mod:`._read` (one definition of an
estimate's s.e., status and final estimate). The loss–complexity tradeoff of
Carroll et al. (2025, §5 and Fig. 3) is checked as two claims:

* :func:`tradeoff_claim`: each dMMSE-like (and each transient) run ends with a
  *lower* in-distribution loss than ridge on its ``q_M`` and, for the account
  to explain its transience, a *higher* LLC than the ridge-like ``M = ∞`` run:
  with the Bayesian free energy ``F_n ≈ n ℓ_n + λ log n`` the posterior then
  prefers the simpler ridge solution at small ``n`` and dMMSE_M at large ``n``;
* :func:`transience_prediction_claim`: the account predicts a ridge phase
  exactly for the M whose dMMSE-like solution has the lower loss *and* the
  higher LLC; per intermediate M, the prediction against the observed verdict.

Both refuse (do not hold, and say so) when an estimate they need is not sound.
A difference counts when it exceeds :data:`SIGNIFICANCE` combined standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..config import format_task_count
from ._diagnostics import FAILED, HALF_Z_MAX, NOT_CONVERGED, RHAT_MAX, SOUND, SPIKE_RATIO, STATUSES, UNRELIABLE
from ._read import Estimate, Estimates, estimate_at, final_estimate, read_estimates

__all__ = [
    "SIGNIFICANCE",
    "dmmse_like_runs",
    "llc_health_report",
    "calibration_report",
    "llc_sections_markdown",
    "tradeoff_claim",
    "transience_prediction_claim",
    "t_crit_report",
    "t_crit_markdown",
    "tradeoff_markdown",
]

# A difference (of losses, of LLCs) counts when it exceeds this many combined standard errors.
SIGNIFICANCE = 2.0


def _label(M: float) -> str:
    return format_task_count(float(M))


def _pm(value: float, sem: float, digits: int = 4) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g} ± {sem:.2g}" if math.isfinite(sem) else f"{value:.{digits}g}"


def dmmse_like_runs(outputs: Mapping[float, xr.Dataset]) -> list[float]:
    """Finite M whose final checkpoint is nearer dMMSE_M than ridge (``dist_dmmse < dist_ridge``), sorted."""
    return sorted(
        M for M, ds in outputs.items()
        if math.isfinite(M) and float(ds["dist_dmmse"][-1]) < float(ds["dist_ridge"][-1])
    )


# ------------------------------------------------------------------ estimates and calibration


def llc_health_report(llc: xr.Dataset) -> dict:
    """The SGLD settings behind ``llc.zarr``, the count per status, and every estimate with its diagnostics."""
    table = read_estimates(llc)
    counts = {name: int(np.sum(table.recorded & (table.status == name))) for name in STATUSES}
    rows = []
    for i, M in enumerate(table.coords["M"]):
        for j, step in enumerate(table.coords["step"]):
            if not table.recorded[i, j]:
                continue
            e = table.estimate((i, j))
            rows.append({
                "M": _label(M), "step": int(step), "status": e.status, "llc_mean": e.mean, "llc_sem": e.sem,
                "failed_chains": e.failed_chains, "trace_peak_over_init_loss": e.trace_peak, "rhat": e.rhat,
                "half_z": e.half_z, "mala_acceptance": e.mala_acceptance,
            })
    keys = ("epsilon", "epsilon_source", "gamma", "nbeta", "batch_size", "num_chains", "burnin_time", "draw_time",
            "num_burnin", "num_draws")
    settings = {key: llc.attrs.get(key) for key in keys if key in llc.attrs}
    return {"settings": settings, "counts": counts, "estimates": rows,
            "not_sound": [r for r in rows if r["status"] != SOUND], "errors": list(llc.attrs.get("errors", []))}


def calibration_report(calibration: xr.Dataset) -> dict:
    """The chosen ε, whether the rule held, and the evidence table of ``llc_calibration.zarr``."""
    gamma = float(calibration.attrs.get("chosen_gamma", float(calibration["gamma"].values[0])))
    at = calibration.sel(gamma=gamma)
    table = read_estimates(at, ("M", "step", "epsilon"))
    eligible = at["eligible"].transpose("M", "step").values if "eligible" in at else None
    lengths = {float(e): (int(at["num_burnin"].sel(epsilon=e)), int(at["num_draws"].sel(epsilon=e)))
               for e in at["epsilon"].values} if "num_burnin" in at else {}
    rows = []
    for index in np.ndindex(*table.status.shape):
        a, s, b = index
        e = table.estimate(index)
        eps = float(at["epsilon"].values[b])
        rows.append({
            "M": _label(at["M"].values[a]), "step": int(at["step"].values[s]), "epsilon": eps,
            "steps": lengths.get(eps), "llc_mean": e.mean, "llc_sem": e.sem, "status": e.status,
            "failed_chains": e.failed_chains, "trace_peak_over_init_loss": e.trace_peak, "rhat": e.rhat,
            "half_z": e.half_z, "mala_acceptance": e.mala_acceptance,
            "healthy": bool(at["healthy"].values[a, s, b]), "plateau": bool(at["plateau"].values[a, s, b]),
            "accepted": bool(at["accepted"].values[a, s, b]),
            "eligible": None if eligible is None else bool(eligible[a, s]),
        })
    return {
        "chosen_epsilon": float(calibration["chosen_epsilon"]),
        "gamma": gamma,
        "rule_satisfied": bool(int(calibration.attrs.get("rule_satisfied", 0))),
        "reason": str(calibration.attrs.get("choice_reason", "")),
        "burnin_time": calibration.attrs.get("burnin_time"),
        "draw_time": calibration.attrs.get("draw_time"),
        "num_chains": calibration.attrs.get("num_chains"),
        "rows": rows,
        "errors": list(calibration.attrs.get("errors", [])),
    }


def _number(value: float, fmt: str) -> str:
    return format(value, fmt) if value is not None and math.isfinite(value) else "—"


def llc_sections_markdown(health: dict | None, calibration: dict | None) -> list[str]:
    """Markdown lines for the calibration and the estimates (with their diagnostics) of claims.md."""
    lines: list[str] = []
    if calibration is not None:
        satisfied = calibration["rule_satisfied"]
        verdict = "**rule satisfied**" if satisfied else "**RULE NOT SATISFIED (fallback)**"
        chains = (f"{calibration['num_chains']} chains, burn-in {calibration['burnin_time']:g} and draws "
                  f"{calibration['draw_time']:g} in units of 1/(εγ) steps" if calibration.get("burnin_time") else "")
        lines += ["", "## LLC step size: calibration", "",
                  f"Chosen ε = **{calibration['chosen_epsilon']:g}** at γ = {calibration['gamma']:g} ({verdict}). "
                  + (f"Chains: {chains}." if chains else ""),
                  "", calibration["reason"], "",
                  "| M | step | ε | steps (burn-in + draws) | LLC ± s.e. | status | R̂ | half z | MALA | peak | "
                  "plateau | accepted | point has a plateau |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in calibration["rows"]:
            steps = f"{r['steps'][0]} + {r['steps'][1]}" if r["steps"] else "—"
            eligible = "—" if r["eligible"] is None else ("yes" if r["eligible"] else "**no**")
            lines.append(
                f"| {r['M']} | {r['step']} | {r['epsilon']:g} | {steps} | {_pm(r['llc_mean'], r['llc_sem'])} | "
                f"{r['status']} | {_number(r['rhat'], '.3f')} | {_number(r['half_z'], '+.2f')} | "
                f"{_number(r['mala_acceptance'], '.2f')} | {_number(r['trace_peak_over_init_loss'], '.3g')} | "
                f"{'yes' if r['plateau'] else 'no'} | {'yes' if r['accepted'] else 'no'} | {eligible} |"
            )
        lines += [f"- fit error: {e}" for e in calibration.get("errors", [])]
    if health is not None:
        settings = ", ".join(f"{k} = {v}" for k, v in health["settings"].items())
        c = health["counts"]
        lines += ["", "## LLC estimates: diagnostics", "", f"Settings: {settings}.", "",
                  f"{c[SOUND]} sound, {c[NOT_CONVERGED]} not converged (split R̂ > {RHAT_MAX:g} or |half z| > "
                  f"{HALF_Z_MAX:g}), {c[UNRELIABLE]} unreliable (some chains diverged or the SGLD loss exceeded "
                  f"{SPIKE_RATIO:.0f} x its start), {c[FAILED]} failed (no estimate; stored as NaN). R̂: split-R̂ "
                  "of the loss traces across chains; half z: second-half minus first-half mean of the draws in "
                  "batch-means standard errors; MALA: mean acceptance probability (recorded, gates nothing); "
                  "peak: highest SGLD loss over ℓ_n(w*).", "",
                  "| M | step | LLC ± s.e. | status | R̂ | half z | MALA | peak | failed chains |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in health["estimates"]:
            lines.append(
                f"| {r['M']} | {r['step']} | {_pm(r['llc_mean'], r['llc_sem'])} | {r['status']} | "
                f"{_number(r['rhat'], '.3f')} | {_number(r['half_z'], '+.2f')} | {_number(r['mala_acceptance'], '.2f')} "
                f"| {_number(r['trace_peak_over_init_loss'], '.3g')} | {_number(r['failed_chains'], '.0f')} |"
            )
        lines += [f"- fit error: {e}" for e in health.get("errors", [])]
    return lines


# ------------------------------------------------------------------------- the tradeoff


def _compare(a: float, a_sem: float, b: float, b_sem: float) -> tuple[float, float, str]:
    """``a − b``, its combined s.e., and ``"higher"``/``"lower"``/``"within 2 s.e."`` (NaN s.e. counts as 0)."""
    diff = a - b
    se = math.hypot(*(s if math.isfinite(s) else 0.0 for s in (a_sem, b_sem)))
    if not math.isfinite(diff):
        return diff, se, "n/a"
    if diff > SIGNIFICANCE * se:
        return diff, se, "higher"
    if diff < -SIGNIFICANCE * se:
        return diff, se, "lower"
    return diff, se, f"within {SIGNIFICANCE:g} s.e."


def _tradeoff_row(M: float, final: Estimate, ridge_like: Estimate) -> dict:
    loss_diff, loss_se = final.loss_minus_ridge, final.loss_minus_ridge_sem
    loss_vs = _compare(loss_diff, loss_se, 0.0, 0.0)[2]
    llc_diff, llc_se, llc_vs = _compare(final.mean, final.sem, ridge_like.mean, ridge_like.sem)
    return {
        "M": _label(M), "step": final.step, "status": final.status,
        "loss": final.loss, "loss_sem": final.loss_sem, "ridge_loss": final.ridge_loss,
        "ridge_loss_sem": final.ridge_loss_sem, "loss_minus_ridge": loss_diff, "loss_minus_ridge_sem": loss_se,
        "loss_vs_ridge": loss_vs,
        "llc": final.mean, "llc_sem": final.sem, "llc_ridge_like": ridge_like.mean, "llc_ridge_like_sem": ridge_like.sem,
        "llc_minus_ridge_like": llc_diff, "llc_minus_ridge_like_sem": llc_se, "llc_vs_ridge_like": llc_vs,
    }


def _refused(estimates: Mapping[str, Estimate]) -> list[str]:
    return [f"M={label} ({e.status or 'no estimate'})" for label, e in estimates.items() if not e.sound]


def tradeoff_claim(
    llc: xr.Dataset | Estimates, outputs: Mapping[float, xr.Dataset], observed_transient: Mapping[float, bool]
):
    """Claim: dMMSE-like and transient runs end with lower loss than ridge, and transient ones with higher LLC.

    Args:
        llc: ``llc.zarr`` (final estimates, with ``loss``/``ridge_loss`` on the LLC sequences), or
            its :func:`read_estimates`.
        outputs: run ``M`` → its ``outputs.zarr`` (which runs end dMMSE-like).
        observed_transient: ``M`` → whether the transience claim found the run transient.

    Returns:
        A :class:`~transient_ridge.claims.Claim` named ``loss_complexity_tradeoff``: it holds when
        every compared run (dMMSE-like at the end, or transient) has a lower final
        in-distribution loss than ridge on its ``q_M`` (by > 2 s.e., paired on the same
        sequences), every transient run a higher final LLC than ``M = ∞`` (by > 2 s.e.),
        and every estimate it needs is sound; otherwise it does not hold, and when an
        estimate is not sound the evidence says ``refused``.
    """
    from ..claims import Claim  # claims imports this package: import here, not at module level

    table = read_estimates(llc)
    compared = sorted(set(dmmse_like_runs(outputs)) | {M for M, t in observed_transient.items() if t})
    ridge_like = final_estimate(table, math.inf)
    finals = {M: final_estimate(table, M) for M in compared}
    rows = [_tradeoff_row(M, finals[M], ridge_like) for M in compared]
    refused = _refused({"inf": ridge_like, **{_label(M): finals[M] for M in compared}}) if compared else []
    transient = [M for M in compared if observed_transient.get(M, False)]
    lower_loss = all(r["loss_vs_ridge"] == "lower" for r in rows)
    higher_llc = all(r["llc_vs_ridge_like"] == "higher" for r in rows if float(r["M"]) in transient)
    holds = bool(rows) and not refused and lower_loss and higher_llc
    verdict = "refused (an estimate is not sound)" if refused else ("holds" if holds else "does not hold")
    return Claim(
        "loss_complexity_tradeoff",
        f"Carroll et al.'s account (Fig. 3): every dMMSE-like or transient run ends with a lower in-distribution loss "
        f"on q_M than ridge (by > {SIGNIFICANCE:g} s.e., paired on the LLC's q_M sequences), and every transient run "
        f"with a higher final LLC than the ridge-like M = inf run (by > {SIGNIFICANCE:g} s.e.); the LLC relation of "
        "the other dMMSE-like runs is reported; refused when a compared estimate is not sound",
        holds,
        {"verdict": verdict, "refused": refused, "transient_M": [_label(M) for M in transient], "tradeoff_rows": rows},
    )


def transience_prediction_claim(
    llc: xr.Dataset | Estimates, outputs: Mapping[float, xr.Dataset], observed_transient: Mapping[float, bool]
):
    """Claim: the tradeoff predicts which intermediate M are transient.

    Per intermediate M (every finite M of ``observed_transient``): predicted
    transient when the run ends dMMSE-like with a lower loss than ridge *and* a higher
    LLC than ``M = ∞`` (each by > 2 s.e.); "not testable" when it does not end
    dMMSE-like (no dMMSE-like solution was reached to measure) or when its LLC is
    within 2 s.e. of ``M = ∞``'s. The claim holds when every testable M agrees with
    the observed verdict, at least one M is testable and every estimate it needs is
    sound; otherwise it does not hold (``refused`` in the evidence for unsound estimates).
    """
    from ..claims import Claim  # claims imports this package: import here, not at module level

    table = read_estimates(llc)
    dmmse_like = set(dmmse_like_runs(outputs))
    ridge_like = final_estimate(table, math.inf)
    rows, needed = [], {"inf": ridge_like}
    for M in sorted(m for m in observed_transient if math.isfinite(m)):
        observed = bool(observed_transient[M])
        if M not in dmmse_like:
            rows.append({"M": _label(M), "predicted": None, "observed": observed, "agree": None,
                         "why": "does not end dMMSE-like: no dMMSE-like solution to measure"})
            continue
        final = final_estimate(table, M)
        needed[_label(M)] = final
        row = _tradeoff_row(M, final, ridge_like)
        if row["llc_vs_ridge_like"] not in ("higher", "lower") or row["loss_vs_ridge"] not in ("higher", "lower"):
            rows.append({**row, "predicted": None, "observed": observed, "agree": None,
                         "why": "LLC or loss within 2 s.e. of the comparison: no prediction"})
            continue
        predicted = row["loss_vs_ridge"] == "lower" and row["llc_vs_ridge_like"] == "higher"
        rows.append({**row, "predicted": predicted, "observed": observed, "agree": predicted == observed, "why": ""})
    refused = _refused(needed) if len(needed) > 1 else []
    testable = [r for r in rows if r["agree"] is not None]
    holds = bool(testable) and not refused and all(r["agree"] for r in testable)
    verdict = "refused (an estimate is not sound)" if refused else ("holds" if holds else "does not hold")
    return Claim(
        "tradeoff_predicts_transience",
        "the loss-complexity account predicts a transient ridge phase exactly for the intermediate M whose final "
        "dMMSE-like solution has a lower loss than ridge and a higher LLC than the ridge-like M = inf run; "
        "prediction and observed transience agree for every M where both are determined",
        holds,
        {"verdict": verdict, "refused": refused, "prediction_rows": rows},
    )


def tradeoff_markdown(evidence: dict) -> list[str]:
    """Markdown table of a tradeoff claim's rows (``tradeoff_rows`` or ``prediction_rows``)."""
    rows = evidence.get("tradeoff_rows") or evidence.get("prediction_rows") or []
    predicted = "prediction_rows" in evidence
    lines = ["", "| M | status | loss − ridge (q_M) | loss vs ridge | LLC | LLC at M = inf | LLC vs M = inf |"
             + (" predicted transient | observed | agree |" if predicted else ""),
             "| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- | --- |" if predicted else "")]
    for r in rows:
        if "llc" not in r:  # not dMMSE-like: nothing measured
            lines.append(f"| {r['M']} | — | — | — | — | — | — | n/a ({r['why']}) | {'yes' if r['observed'] else 'no'} "
                         "| — |")
            continue
        cells = (f"| {r['M']} | {r['status']} | {_pm(r['loss_minus_ridge'], r['loss_minus_ridge_sem'], 3)} "
                 f"({_pm(r['loss'], r['loss_sem'], 4)} vs {_pm(r['ridge_loss'], r['ridge_loss_sem'], 4)}) | "
                 f"{r['loss_vs_ridge']} | {_pm(r['llc'], r['llc_sem'], 3)} | "
                 f"{_pm(r['llc_ridge_like'], r['llc_ridge_like_sem'], 3)} | {r['llc_vs_ridge_like']} |")
        if predicted:
            guess = "n/a" if r["predicted"] is None else ("yes" if r["predicted"] else "no")
            agree = "—" if r["agree"] is None else ("yes" if r["agree"] else "**no**")
            cells += f" {guess} | {'yes' if r['observed'] else 'no'} | {agree} |"
        lines.append(cells)
    return lines


# --------------------------------------------------------------------- t_crit against the end


def t_crit_report(llc: xr.Dataset, outputs: Mapping[float, xr.Dataset]) -> list[dict]:
    """Per run: the LLC and the loss at the estimated checkpoint nearest ``t_crit``, and at the end.

    ``t_crit`` is the run's step of minimal OOD loss (``outputs.attrs["t_crit"]``); the
    nearest step with an LLC record is used (``llc.steps`` can put one there). The
    paper's Bayesian-model-selection story, measured: near ``t_crit`` a transient run is
    in its ridge-like state, at the end in its dMMSE-like state.
    """
    table = read_estimates(llc)
    steps = table.coords["step"]
    rows = []
    for M in sorted(outputs):
        i = np.flatnonzero(table.coords["M"].astype(np.float64) == float(M))
        if not i.size or "t_crit" not in outputs[M].attrs:
            continue
        recorded = steps[table.recorded[int(i[0])]]
        if not recorded.size:
            continue
        t_crit = int(outputs[M].attrs["t_crit"])
        near = int(recorded[np.argmin(np.abs(recorded - t_crit))])
        at, end = estimate_at(table, M, near), final_estimate(table, M)
        ratio = at.mean / end.mean if math.isfinite(at.mean) and math.isfinite(end.mean) and end.mean else math.nan
        rows.append({
            "M": _label(M), "t_crit": t_crit, "step": near, "end_step": end.step,
            "llc_at_t_crit": at.mean, "llc_at_t_crit_sem": at.sem, "status_at_t_crit": at.status,
            "loss_at_t_crit": at.loss, "loss_at_t_crit_sem": at.loss_sem,
            "ridge_loss_at_t_crit": at.ridge_loss,
            "llc_end": end.mean, "llc_end_sem": end.sem, "status_end": end.status,
            "loss_end": end.loss, "loss_end_sem": end.loss_sem, "ridge_loss_end": end.ridge_loss,
            "llc_t_crit_over_end": ratio,
        })
    return rows


def t_crit_markdown(rows: list[dict], transient: Mapping[float, bool] | None = None) -> list[str]:
    """Markdown of :func:`t_crit_report` (a claims.md section)."""
    if not rows:
        return []
    lines = ["", "## LLC at t_crit and at the end", "",
             "Per run: the LLC checkpoint nearest t_crit (the step of minimal OOD loss) against the final one, with "
             "the in-distribution loss of the checkpoint and of ridge on the LLC's q_M sequences. For a transient run "
             "this compares its ridge-like state with its dMMSE-like one.", "",
             "| M | transient | t_crit | LLC step | LLC near t_crit | loss (ridge) | final step | final LLC | "
             "loss (ridge) | LLC near t_crit / final |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        flag = "—" if transient is None or float(r["M"]) not in transient else (
            "yes" if transient[float(r["M"])] else "no")

        def llc(mean, sem, status):
            text = _pm(mean, sem, 3)
            return text if status == SOUND else f"_{text} ({status})_"

        lines.append(
            f"| {r['M']} | {flag} | {r['t_crit']} | {r['step']} | "
            f"{llc(r['llc_at_t_crit'], r['llc_at_t_crit_sem'], r['status_at_t_crit'])} | "
            f"{_pm(r['loss_at_t_crit'], r['loss_at_t_crit_sem'], 4)} ({_number(r['ridge_loss_at_t_crit'], '.4g')}) | "
            f"{r['end_step']} | {llc(r['llc_end'], r['llc_end_sem'], r['status_end'])} | "
            f"{_pm(r['loss_end'], r['loss_end_sem'], 4)} ({_number(r['ridge_loss_end'], '.4g')}) | "
            f"{_number(r['llc_t_crit_over_end'], '.2f')} |"
        )
    return lines
