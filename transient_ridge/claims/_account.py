"""Carroll et al.'s (2025, §5 and Fig. 3) loss–complexity account, one claim per statement.

The account: dMMSE_M fits q_M better than ridge (lower loss) but is more complex
(higher LLC), so with the Bayesian free energy ``F_n ≈ n ℓ_n + λ log n`` the
posterior prefers the simpler ridge at small n and dMMSE_M at large n; as M grows the
loss advantage shrinks and the LLC of the dMMSE-like solution grows until it passes
the ridge-like solution's (M = ∞), near the onset of transience. Each statement is
its own claim:

* :func:`loss_gap_shrinks_with_M`: the in-distribution loss advantage over ridge
  shrinks as M grows (among dMMSE-like runs);
* :func:`llc_grows_with_M_for_dmmse_runs`: the final LLC rises with M;
* :func:`llc_crosses_M_inf`: it passes M = ∞'s inside the sweep (the bracket);
* :func:`loss_complexity_tradeoff`: every transient run is better than ridge and
  more complex than M = ∞;
* :func:`tradeoff_predicts_transience`: the account's prediction per M against the
  observed transience.

Every number comes with its stored standard error: a loss against ridge's is paired
on the LLC's own q_M sequences (``loss_minus_ridge_sem``); estimates of different runs
are independent (combined s.e. ``hypot``). A difference counts beyond
:data:`SIGNIFICANCE` combined s.e. A trend over M is the weighted least-squares slope
against log2 M (weights 1/s.e.², its s.e. from the stated s.e.: :func:`trend`).
Comparisons against M = ∞ are not testable when M = ∞ does not end at ridge (the
endpoint rule of ``infinite_M_ends_at_ridge``), and no claim compares an estimate
that is not sound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..llc import Estimate
from ._claim import Claim
from ._inputs import RIDGE_OOD_TOLERANCE, ClaimInputs, label

__all__ = [
    "SIGNIFICANCE",
    "trend",
    "steps_between",
    "loss_gap_shrinks_with_M",
    "llc_grows_with_M_for_dmmse_runs",
    "llc_crosses_M_inf",
    "loss_complexity_tradeoff",
    "tradeoff_predicts_transience",
]

# A difference (of losses, of LLCs, a slope) counts when it exceeds this many standard errors.
SIGNIFICANCE = 2.0
ABOVE, BELOW, WITHIN = "above", "below", f"within {SIGNIFICANCE:g} s.e."


def _labels(Ms: Sequence[float]) -> str:
    return ", ".join(label(M) for M in Ms)


def _num(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else "n/a"


def _pm(value: float, sem: float) -> str:
    return f"{_num(value)} ± {_num(sem, 2)}"


def side(diff: float, sem: float) -> str:
    """``"above"`` / ``"below"`` when ``|diff|`` exceeds :data:`SIGNIFICANCE` x ``sem``, else ``"within 2 s.e."``."""
    if diff > SIGNIFICANCE * sem:
        return ABOVE
    if diff < -SIGNIFICANCE * sem:
        return BELOW
    return WITHIN


def trend(Ms: Sequence[float], values: Sequence[float], sems: Sequence[float]) -> dict:
    """Weighted least-squares slope of ``values`` against ``log2 M`` and its s.e. from the given s.e.

    With ``x = log2 M`` and weights ``w = 1/sem²``: ``slope = Σ w (x − x̄) y / Σ w (x − x̄)²``
    (``x̄`` the weighted mean), ``slope_sem = 1 / sqrt(Σ w (x − x̄)²)``, the s.e. the slope
    has when each value's s.e. is the stated one; ``z = slope / slope_sem``.

    Args:
        Ms: ``(n,)`` finite M, at least two distinct.
        values: ``(n,)`` the measured values (per run).
        sems: ``(n,)`` their standard errors, all > 0.

    Returns:
        ``{"slope", "slope_sem", "z"}``, slope in units of the values per doubling of M.
    """
    x = np.log2(np.asarray(Ms, dtype=np.float64))
    y = np.asarray(values, dtype=np.float64)
    w = 1.0 / np.asarray(sems, dtype=np.float64) ** 2
    centred = x - np.sum(w * x) / np.sum(w)
    spread = float(np.sum(w * centred**2))
    slope = float(np.sum(w * centred * y) / spread)
    slope_sem = 1.0 / math.sqrt(spread)
    return {"slope": slope, "slope_sem": slope_sem, "z": slope / slope_sem}


def steps_between(Ms: Sequence[float], values: Sequence[float], sems: Sequence[float]) -> list[dict]:
    """Each consecutive pair (ascending M): ``change`` = later − earlier, its combined s.e. and ``z``."""
    steps = []
    for i in range(len(Ms) - 1):
        change, sem = values[i + 1] - values[i], math.hypot(sems[i], sems[i + 1])
        steps.append({"from": label(Ms[i]), "to": label(Ms[i + 1]), "change": change, "change_sem": sem,
                      "z": change / sem if sem > 0 else math.copysign(math.inf, change)})
    return steps


def _slope(fit: dict) -> str:
    return f"slope z = {fit['z']:+.1f}"


def _not_sound(s: ClaimInputs, Ms: Sequence[float]) -> str | None:
    """The reason a claim that compares these runs' final LLC estimates is not testable, if any."""
    bad = [f"M = {label(M)} ({s.final(M).status or 'no estimate'})" for M in Ms if not s.final(M).sound]
    return f"an estimate is not sound: {', '.join(bad)}" if bad else None


def _no_sem(s: ClaimInputs, Ms: Sequence[float], field: str) -> str | None:
    bad = [label(M) for M in Ms if not getattr(s.final(M), field) > 0]
    return f"no standard error for M = {', '.join(bad)}" if bad else None


def _ridge_like(s: ClaimInputs) -> tuple[Estimate | None, str | None]:
    """M = ∞'s final estimate as the ridge-like reference, or why it cannot be one."""
    if math.inf not in s.outputs:
        return None, "no M = inf run"
    end = s.endpoint
    if end is None:
        return None, "the baselines have no ridge OOD loss, so M = inf's endpoint cannot be checked"
    if not end.at_ridge:
        return None, (f"M = inf does not end at ridge (final OOD loss {end.excess:+.1%} from ridge's; the endpoint "
                      f"rule allows {RIDGE_OOD_TOLERANCE:.0%})")
    reference = s.final(math.inf)
    return (reference, None) if reference.sound else (None, _not_sound(s, [math.inf]))


def _llc_rows(s: ClaimInputs, Ms: Sequence[float]) -> list[dict]:
    return [{"M": label(M), "llc": s.final(M).mean, "llc_sem": s.final(M).sem, "status": s.final(M).status}
            for M in Ms]


# ------------------------------------------------------------------------------ the loss gap


def loss_gap_shrinks_with_M(s: ClaimInputs) -> Claim:
    """Among dMMSE-like runs the in-distribution loss advantage over ridge on q_M shrinks as M grows."""
    name = "loss_gap_shrinks_with_M"
    statement = (
        "Among dMMSE-like runs, the final in-distribution advantage over ridge on q_M (ridge's loss minus the run's, "
        f"paired on the LLC's q_M sequences) grows between no two consecutive M by more than {SIGNIFICANCE:g} s.e. and "
        f"falls across the range: its weighted least-squares slope against log2 M is below -{SIGNIFICANCE:g} of its "
        "s.e."
    )
    Ms = s.dmmse_like
    if len(Ms) < 2:
        return Claim.untestable(name, statement, f"fewer than two dMMSE-like runs ({_labels(Ms) or 'none'})")
    missing = [label(M) for M in Ms if not math.isfinite(s.final(M).loss_minus_ridge)]
    if missing:
        return Claim.untestable(name, statement, f"no paired loss for M = {', '.join(missing)} (no LLC record)")
    if reason := _no_sem(s, Ms, "loss_minus_ridge_sem"):
        return Claim.untestable(name, statement, reason)
    gap = [-s.final(M).loss_minus_ridge for M in Ms]
    sem = [s.final(M).loss_minus_ridge_sem for M in Ms]
    steps = steps_between(Ms, gap, sem)
    fit = trend(Ms, gap, sem)
    grows = [st for st in steps if st["z"] > SIGNIFICANCE]
    holds = not grows and fit["z"] < -SIGNIFICANCE
    finding = f"{', '.join(_num(g) for g in gap)} at M = {_labels(Ms)}, {_slope(fit)}"
    if grows:
        finding += "; grows " + ", ".join(f"from M = {st['from']} to {st['to']} by {st['z']:.1f} s.e." for st in grows)
    rows = [{"M": label(M), "advantage": g, "advantage_sem": e, "loss": s.final(M).loss,
             "ridge_loss": s.final(M).ridge_loss} for M, g, e in zip(Ms, gap, sem)]
    return Claim.judged(name, statement, holds, finding, {"rows": rows, "steps": steps, "trend": fit})


# ------------------------------------------------------------------------ the LLC rises with M


def llc_grows_with_M_for_dmmse_runs(s: ClaimInputs) -> Claim:
    """Among dMMSE-like runs the final LLC rises with M: no consecutive fall, a significant rise across the range."""
    name = "llc_grows_with_M_for_dmmse_runs"
    statement = (
        f"Among dMMSE-like runs, the final LLC falls between no two consecutive M by more than {SIGNIFICANCE:g} s.e. "
        f"and rises across the range: its weighted least-squares slope against log2 M exceeds {SIGNIFICANCE:g} of its "
        "s.e., every compared estimate sound."
    )
    Ms = s.dmmse_like
    if len(Ms) < 2:
        return Claim.untestable(name, statement, f"fewer than two dMMSE-like runs ({_labels(Ms) or 'none'})")
    rows = _llc_rows(s, Ms)
    if reason := _not_sound(s, Ms) or _no_sem(s, Ms, "sem"):
        return Claim.untestable(name, statement, reason, {"rows": rows})
    llc = [s.final(M).mean for M in Ms]
    sem = [s.final(M).sem for M in Ms]
    steps = steps_between(Ms, llc, sem)
    fit = trend(Ms, llc, sem)
    falls = [st for st in steps if st["z"] < -SIGNIFICANCE]
    holds = not falls and fit["z"] > SIGNIFICANCE
    finding = f"{', '.join(_num(v) for v in llc)} at M = {_labels(Ms)}, {_slope(fit)}"
    if falls:
        finding += "; falls " + ", ".join(f"from M = {st['from']} to {st['to']} by {-st['z']:.1f} s.e." for st in falls)
    return Claim.judged(name, statement, holds, finding, {"rows": rows, "steps": steps, "trend": fit})


# ------------------------------------------------------------------------------- the crossing


def llc_crosses_M_inf(s: ClaimInputs) -> Claim:
    """The dMMSE-like final LLC passes M = ∞'s once, upwards, inside the sweep: the bracket [M_a, M_b]."""
    name = "llc_crosses_M_inf"
    statement = (
        "The final LLC of the dMMSE-like runs passes M = inf's once, upwards, inside the sweep: some M_a lies "
        f"below it and the next M that is not within {SIGNIFICANCE:g} s.e. of it, M_b, above it (each by more than "
        f"{SIGNIFICANCE:g} combined s.e.), and no larger M lies below again; the report names [M_a, M_b], or, when "
        "nothing crosses, the side the data lie on."
    )
    reference, reason = _ridge_like(s)
    if reason:
        return Claim.untestable(name, statement, reason)
    Ms = s.dmmse_like
    if len(Ms) < 2:
        return Claim.untestable(name, statement, f"fewer than two dMMSE-like runs ({_labels(Ms) or 'none'})")
    if reason := _not_sound(s, Ms) or _no_sem(s, [*Ms, math.inf], "sem"):
        return Claim.untestable(name, statement, reason, {"rows": _llc_rows(s, Ms)})
    rows = []
    for row in _llc_rows(s, Ms):
        diff, sem = row["llc"] - reference.mean, math.hypot(row["llc_sem"], reference.sem)
        rows.append({**row, "minus_M_inf": diff, "minus_M_inf_sem": sem, "z": diff / sem, "side": side(diff, sem)})
    sides = [(row["M"], row["side"]) for row in rows if row["side"] != WITHIN]
    passages = [(a, b, sb) for (a, sa), (b, sb) in zip(sides, sides[1:]) if sa != sb]  # (M_a, M_b, side after)
    inf_text = f"M = inf's {_pm(reference.mean, reference.sem)}"
    evidence = {"llc_M_inf": reference.mean, "llc_M_inf_sem": reference.sem, "rows": rows}
    if len(passages) == 1 and passages[0][2] == ABOVE:
        M_a, M_b, _ = passages[0]
        finding = f"crosses {inf_text} in [M_a, M_b] = [{M_a}, {M_b}]"
        return Claim.judged(name, statement, True, finding, {**evidence, "bracket": [M_a, M_b], "side": None})
    if passages:
        described = "; ".join(f"{'up' if after == ABOVE else 'down'} in [{a}, {b}]" for a, b, after in passages)
        finding = f"passes {inf_text} more than once or downwards: {described}"
        return Claim.judged(name, statement, False, finding, {**evidence, "bracket": None, "side": "both",
                                                              "passages": [list(p) for p in passages]})
    where = sides[0][1] if sides else WITHIN
    nearest = min(rows, key=lambda row: abs(row["z"]))
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["side"], []).append(row["M"])
    first, *rest = [f"{side_} at M = {', '.join(Ms_)}" for side_, Ms_ in groups.items()]
    first = first.replace(" at M", f" {inf_text} at M", 1)
    finding = f"no crossing in the range: {' and '.join([first, *rest])}, nearest z = {nearest['z']:+.1f}"
    return Claim.judged(name, statement, False, finding, {**evidence, "bracket": None, "side": where})


# ---------------------------------------------------------------- the transient runs, explained


def _relation(diff: float, sem: float) -> str:
    """``"higher"`` / ``"lower"`` beyond :data:`SIGNIFICANCE` s.e., else ``"within 2 s.e."``."""
    return {ABOVE: "higher", BELOW: "lower"}.get(side(diff, sem), WITHIN)


def _tradeoff_row(s: ClaimInputs, M: float, reference: Estimate) -> dict:
    final = s.final(M)
    loss_diff, loss_sem = final.loss_minus_ridge, final.loss_minus_ridge_sem
    llc_diff, llc_sem = final.mean - reference.mean, math.hypot(final.sem, reference.sem)
    return {
        "M": label(M), "step": final.step, "status": final.status,
        "loss": final.loss, "loss_sem": final.loss_sem, "ridge_loss": final.ridge_loss,
        "ridge_loss_sem": final.ridge_loss_sem, "loss_minus_ridge": loss_diff, "loss_minus_ridge_sem": loss_sem,
        "loss_vs_ridge": _relation(loss_diff, loss_sem),
        "llc": final.mean, "llc_sem": final.sem, "llc_M_inf": reference.mean, "llc_M_inf_sem": reference.sem,
        "llc_minus_M_inf": llc_diff, "llc_minus_M_inf_sem": llc_sem,
        "llc_vs_M_inf": _relation(llc_diff, llc_sem),
    }


def loss_complexity_tradeoff(s: ClaimInputs) -> Claim:
    """Every transient run ends better than ridge on q_M and more complex than M = ∞."""
    name = "loss_complexity_tradeoff"
    statement = (
        "Every transient run ends with a lower in-distribution loss than ridge on q_M (paired on the LLC's q_M "
        f"sequences) and a higher final LLC than M = inf, each by more than {SIGNIFICANCE:g} s.e., the account's "
        "explanation of its ridge phase."
    )
    reference, reason = _ridge_like(s)
    if reason:
        return Claim.untestable(name, statement, reason)
    transient = [M for M, t in s.observed_transience.items() if t]
    if not transient:
        return Claim.untestable(name, statement, "no transient run to explain")
    if reason := _not_sound(s, transient):
        return Claim.untestable(name, statement, reason)
    rows = [_tradeoff_row(s, M, reference) for M in transient]
    explained = [r["M"] for r in rows if r["loss_vs_ridge"] == "lower" and r["llc_vs_M_inf"] == "higher"]
    others = [r["M"] for r in rows if r["M"] not in explained]
    finding = (f"explained: M = {', '.join(explained) or 'none'}"
               + (f"; not (lower loss and higher LLC): M = {', '.join(others)}" if others else ""))
    return Claim.judged(name, statement, not others, finding, {"transient_M": [r["M"] for r in rows],
                                                                "tradeoff_rows": rows})


def tradeoff_predicts_transience(s: ClaimInputs) -> Claim:
    """The account's prediction of which intermediate M are transient, against the observed verdicts."""
    name = "tradeoff_predicts_transience"
    statement = (
        "Per intermediate M that ends dMMSE-like, the account predicts a ridge phase exactly when its final loss on "
        "q_M is below ridge's and its final LLC above M = inf's (each beyond 2 s.e.; within 2 s.e.: no prediction), "
        "and the prediction agrees with the observed transience at every M that has one."
    )
    reference, reason = _ridge_like(s)
    if reason:
        return Claim.untestable(name, statement, reason)
    intermediate = sorted(s.observed_transience)
    measured = [M for M in intermediate if M in s.dmmse_like]
    if reason := _not_sound(s, measured):
        return Claim.untestable(name, statement, reason)
    rows = []
    for M in intermediate:
        observed = bool(s.observed_transience[M])
        if M not in measured:
            rows.append({"M": label(M), "predicted": None, "observed": observed, "agree": None,
                         "why": "does not end dMMSE-like: no dMMSE-like solution to measure"})
            continue
        row = _tradeoff_row(s, M, reference)
        if WITHIN in (row["llc_vs_M_inf"], row["loss_vs_ridge"]):
            rows.append({**row, "predicted": None, "observed": observed, "agree": None,
                         "why": f"LLC or loss within {SIGNIFICANCE:g} s.e. of the comparison: no prediction"})
            continue
        predicted = row["loss_vs_ridge"] == "lower" and row["llc_vs_M_inf"] == "higher"
        rows.append({**row, "predicted": predicted, "observed": observed, "agree": predicted == observed, "why": ""})
    testable = [r for r in rows if r["agree"] is not None]
    if not testable:
        return Claim.untestable(name, statement, "no intermediate M gives a prediction", {"prediction_rows": rows})
    disagree = [r for r in testable if not r["agree"]]
    groups: dict[tuple[bool, bool, bool], list[str]] = {}
    for r in testable:
        groups.setdefault((r["agree"], r["predicted"], r["observed"]), []).append(r["M"])
    finding = "; ".join(
        f"{'agrees' if agree else 'disagrees'} at M = {', '.join(Ms)}: {'ridge phase' if predicted else 'none'} "
        f"predicted, {'one' if observed else 'none'} seen"
        for (agree, predicted, observed), Ms in sorted(groups.items(), key=lambda item: not item[0][0])
    )
    return Claim.judged(name, statement, not disagree, finding, {"prediction_rows": rows})
