"""claims.md's LLC sections: the tables of ``transient_ridge.llc`` rendered as Markdown bodies.

Each ``*_markdown`` function takes the table an ``llc`` function returned and gives
the lines below the section's heading (the report builder writes the heading).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..llc import FAILED, HALF_Z_MAX, NOT_CONVERGED, RHAT_MAX, SOUND, SPIKE_RATIO, UNRELIABLE

__all__ = ["calibration_markdown", "health_markdown", "llc_over_training_markdown", "t_crit_markdown"]


def _number(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None and math.isfinite(value) else "—"


def _pm(value: float, sem: float, digits: int = 4) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g} ± {sem:.2g}" if math.isfinite(sem) else f"{value:.{digits}g}"


def calibration_markdown(calibration: dict) -> list[str]:
    """The calibration section (``llc.calibration_report``): the chosen ε, the rule's verdict, every fit."""
    verdict = "**rule satisfied**" if calibration["rule_satisfied"] else "**RULE NOT SATISFIED (fallback)**"
    chains = (f"{calibration['num_chains']} chains, burn-in {calibration['burnin_time']:g} and draws "
              f"{calibration['draw_time']:g} in units of 1/(εγ) steps" if calibration.get("burnin_time") else "")
    lines = [f"Chosen ε = **{calibration['chosen_epsilon']:g}** at γ = {calibration['gamma']:g} ({verdict}). "
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
    return lines + [f"- fit error: {e}" for e in calibration.get("errors", [])]


def health_markdown(health: dict) -> list[str]:
    """The diagnostics section (``llc.llc_health_report``): settings, counts per status, every estimate."""
    settings = ", ".join(f"{k} = {v}" for k, v in health["settings"].items())
    c = health["counts"]
    lines = [f"Settings: {settings}.", "",
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
    return lines + [f"- fit error: {e}" for e in health.get("errors", [])]


def _cell(mean: float | None, sem: float | None, status: str | None) -> str:
    if status is None:
        return "—"
    if status == SOUND:
        return f"{mean:.3g} ± {sem:.2g}" if sem is not None and math.isfinite(sem) else f"{mean:.3g}"
    if mean is None or not math.isfinite(mean):
        return f"_{status}_"
    return f"_{mean:.3g} ({status})_"


def llc_over_training_markdown(report: dict) -> list[str]:
    """The "LLC over training" section (``llc.llc_over_training_report``): one row per run."""
    steps = report["steps"]
    lines = [
        f"LLC ± s.e. at each estimated checkpoint; estimates that are not sound are in italics and do not "
        f"shape the verdict. Shape: from the sound estimates, a change counts above "
        f"{report['tolerance']:.0%} (`transient_ridge.llc.curve_shape`).", "",
        "| M | " + " | ".join(f"step {s}" for s in steps) + " | shape | last / first sound |",
        "| --- | " + " | ".join("---" for _ in steps) + " | --- | --- |",
    ]
    for run in report["runs"]:
        cells = [_cell(m, s, st) for m, s, st in zip(run["llc_mean"], run["llc_sem"], run["status"])]
        ratio = run["last_over_first"]
        span = f"{ratio:.2f} ({run['first_step']} → {run['last_step']})" if math.isfinite(ratio) else "—"
        lines.append(f"| {run['M']} | " + " | ".join(cells) + f" | {run['shape']} | {span} |")
    return lines


def t_crit_markdown(rows: list[dict], transient: Mapping[float, bool] | None = None) -> list[str]:
    """The "LLC at t_crit and at the end" section (``llc.t_crit_report``); ``transient``: M → observed."""
    if not rows:
        return []
    lines = ["Per run: the LLC checkpoint nearest t_crit (the step of minimal OOD loss) against the final one, with "
             "the in-distribution loss of the checkpoint and of ridge on the LLC's q_M sequences. For a transient run "
             "this compares its ridge-like state with its dMMSE-like one.", "",
             "| M | transient | t_crit | LLC step | LLC near t_crit | loss (ridge) | final step | final LLC | "
             "loss (ridge) | LLC near t_crit / final |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def llc(mean: float, sem: float, status: str | None) -> str:
        text = _pm(mean, sem, 3)
        return text if status == SOUND else f"_{text} ({status})_"

    for r in rows:
        flag = "—" if transient is None or float(r["M"]) not in transient else (
            "yes" if transient[float(r["M"])] else "no")
        lines.append(
            f"| {r['M']} | {flag} | {r['t_crit']} | {r['step']} | "
            f"{llc(r['llc_at_t_crit'], r['llc_at_t_crit_sem'], r['status_at_t_crit'])} | "
            f"{_pm(r['loss_at_t_crit'], r['loss_at_t_crit_sem'], 4)} ({_number(r['ridge_loss_at_t_crit'], '.4g')}) | "
            f"{r['end_step']} | {llc(r['llc_end'], r['llc_end_sem'], r['status_end'])} | "
            f"{_pm(r['loss_end'], r['loss_end_sem'], 4)} ({_number(r['ridge_loss_end'], '.4g')}) | "
            f"{_number(r['llc_t_crit_over_end'], '.2f')} |"
        )
    return lines
