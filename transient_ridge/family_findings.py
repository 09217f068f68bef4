"""Findings of the family fit: what each run is nearest, near ``t_crit`` and at the end.

A report, not a claim of the paper: for every M, at each seed's ``t_crit`` (the
checkpoint of minimal OOD loss) and at the end of training, on each probe set, the
nearest member of each fitted family (:mod:`transient_ridge.families`), its distance
against the distance to ridge (λ = σ²), and whether the nearest fitted member is
nearer than ridge by more than the seed spread.

Definitions (the report states them too):

- *nearest family*: the one of ``ridge_lambda``, ``gd_k``, ``least_squares`` at the
  smallest distance; its *margin* is ``dist_ridge − dist_nearest`` (≥ 0 up to rounding:
  the λ grid holds σ²); *nearest overall* adds ``ridge`` and ``dmmse`` (dMMSE_M) to them;
- *seed spread*: ``max − min`` over the train seeds of the distance to ridge at that point;
- *beyond the seed spread*: every seed's margin exceeds the seed spread. With one seed
  the spread is unknown and the verdict is ``None``.

    findings = family_findings(runs_by_M(outputs, seed_axis=True))
    report.add("predictor_families", FINDINGS_TITLE, findings.markdown, findings.report)   # claims.Report
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

from .config import format_task_count
from .families import PROBES
from .seeds import SEED, select_seed

__all__ = [
    "FINDINGS_TITLE",
    "FITTED_FAMILIES",
    "POINTS",
    "FamilyPoint",
    "FamilySummary",
    "FamilyFindings",
    "family_points",
    "summarize_points",
    "family_findings",
]

FINDINGS_TITLE = "Fitted predictor families (a report, not a claim of the paper)"
FITTED_FAMILIES = ("ridge_lambda", "gd_k", "least_squares")  # the candidates for "nearest"
POINTS = ("t_crit", "end")
_NEEDS = ("family_dist", "fit_ridge_penalty", "fit_gd_step_size", "fit_gd_steps")
_PROBE_TEXT = {"ood": "the OOD (q_∞) probe set", "id": "each run's own q_M probe set"}


@dataclass(frozen=True)
class FamilyPoint:
    """One run (M, seed) at one checkpoint on one probe set: distances and the fitted members.

    ``*_at_edge``: the fitted value lies on the boundary of its grid (the optimum may lie beyond).
    """

    M: float
    seed: int | None
    point: str
    step: int
    probe: str
    dist_ridge: float
    dist_dmmse: float
    dist_ridge_lambda: float
    ridge_penalty: float
    ridge_penalty_at_edge: bool
    dist_gd_k: float
    gd_steps: float
    gd_step_size: float
    gd_at_edge: bool
    dist_least_squares: float
    nearest: str
    nearest_overall: str
    margin: float


@dataclass(frozen=True)
class FamilySummary:
    """One M at one point on one probe set, over its seeds (median, min, max of each number)."""

    M: float
    point: str
    probe: str
    seeds: list[int | None]
    steps: list[int]
    nearest: list[str]
    nearest_overall: list[str]
    dist_ridge: tuple[float, float, float]
    dist_dmmse: tuple[float, float, float]
    dist_ridge_lambda: tuple[float, float, float]
    ridge_penalty: tuple[float, float, float]
    dist_gd_k: tuple[float, float, float]
    gd_time: tuple[float, float, float]
    margin: tuple[float, float, float]
    relative_margin: tuple[float, float, float]
    seed_spread: float | None
    beyond_seed_spread: bool | None


@dataclass(frozen=True)
class FamilyFindings:
    """What :func:`family_findings` returns: every point, the table over seeds, the section's Markdown body
    (the lines below its heading, :data:`FINDINGS_TITLE`) and its JSON."""

    points: list[FamilyPoint]
    table: list[FamilySummary]
    markdown: list[str]
    report: dict


def _at_edge(value: float, grid: np.ndarray) -> bool:
    return bool(np.isfinite(value) and len(grid) > 1 and (value <= grid.min() or value >= grid.max()))


def _t_crit_step(run: xr.Dataset) -> int:
    if "t_crit" in run.attrs:
        return int(run.attrs["t_crit"])
    loss = np.asarray(run["loss_ood"].values, dtype=np.float64)
    return int(run["step"].values[int(np.nanargmin(loss))])


def family_points(outputs: Mapping[float, xr.Dataset]) -> list[FamilyPoint]:
    """Every (M, seed, point, probe) of the runs: ``outputs`` maps M to a run's outputs dataset,
    stacked over seeds (a ``seed`` dim) or not. Raises ``KeyError`` naming a missing variable."""
    points: list[FamilyPoint] = []
    for M, stacked in sorted(outputs.items()):
        missing = [name for name in _NEEDS if name not in stacked]
        if missing:
            raise KeyError(
                f"the outputs of M={format_task_count(M)} lack {missing}; rebuild them with the evaluate rule "
                "(the families section of the config)"
            )
        seeds: list[int | None] = [int(s) for s in stacked[SEED].values] if SEED in stacked.dims else [None]
        for seed in seeds:
            run = stacked if seed is None else select_seed(stacked, seed)
            for point, step in (("t_crit", _t_crit_step(run)), ("end", int(run["step"].values[-1]))):
                at = run.sel(step=step)
                for probe in PROBES:
                    points.append(_point(at.sel(probe=probe), run, float(M), seed, point, step, probe))
    return points


def _point(at: xr.Dataset, run: xr.Dataset, M: float, seed: int | None, point: str, step: int, probe: str) -> FamilyPoint:
    dist = {str(f): float(at["family_dist"].sel(family=f)) for f in at["family"].values}
    fitted = {f: dist[f] for f in FITTED_FAMILIES if math.isfinite(dist.get(f, math.nan))}
    nearest = min(fitted, key=fitted.__getitem__) if fitted else "none"
    lam, eta, k = (float(at[name]) for name in ("fit_ridge_penalty", "fit_gd_step_size", "fit_gd_steps"))
    return FamilyPoint(
        M=M,
        seed=seed,
        point=point,
        step=step,
        probe=probe,
        dist_ridge=dist["ridge"],
        dist_dmmse=dist["dmmse"],
        dist_ridge_lambda=dist["ridge_lambda"],
        ridge_penalty=lam,
        ridge_penalty_at_edge=_at_edge(lam, run["ridge_penalty"].values),
        dist_gd_k=dist["gd_k"],
        gd_steps=k,
        gd_step_size=eta,
        gd_at_edge=_at_edge(eta, run["gd_step_size"].values) or _at_edge(k, run["gd_steps"].values),
        dist_least_squares=dist["least_squares"],
        nearest=nearest,
        nearest_overall=min(finite, key=finite.__getitem__) if (finite := {f: d for f, d in dist.items() if math.isfinite(d)}) else "none",
        margin=dist["ridge"] - fitted[nearest] if fitted else math.nan,
    )


def _band(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max), NaN where nothing is finite."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if not finite.size:
        return (math.nan, math.nan, math.nan)
    return (float(np.median(finite)), float(finite.min()), float(finite.max()))


def summarize_points(points: list[FamilyPoint]) -> list[FamilySummary]:
    """Per (M, point, probe), in that order: the seeds' numbers as (median, min, max) and the verdict."""
    groups: dict[tuple[float, str, str], list[FamilyPoint]] = {}
    for p in points:
        groups.setdefault((p.M, p.point, p.probe), []).append(p)
    order = {name: i for i, name in enumerate(POINTS)}
    table = []
    for (M, point, probe), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2] != "ood", order[kv[0][1]])):
        ridge = [p.dist_ridge for p in group]
        margins = [p.margin for p in group]
        spread = float(max(ridge) - min(ridge)) if len(group) > 1 and all(map(math.isfinite, ridge)) else None
        beyond = None if spread is None else bool(all(math.isfinite(m) and m > spread for m in margins))
        table.append(
            FamilySummary(
                M=M,
                point=point,
                probe=probe,
                seeds=[p.seed for p in group],
                steps=[p.step for p in group],
                nearest=[p.nearest for p in group],
                nearest_overall=[p.nearest_overall for p in group],
                dist_ridge=_band(ridge),
                dist_dmmse=_band([p.dist_dmmse for p in group]),
                dist_ridge_lambda=_band([p.dist_ridge_lambda for p in group]),
                ridge_penalty=_band([p.ridge_penalty for p in group]),
                dist_gd_k=_band([p.dist_gd_k for p in group]),
                gd_time=_band([p.gd_steps * p.gd_step_size for p in group]),
                margin=_band(margins),
                relative_margin=_band([m / r if r > 0 else math.nan for m, r in zip(margins, ridge)]),
                seed_spread=spread,
                beyond_seed_spread=beyond,
            )
        )
    return table


def _cell(band: tuple[float, float, float], fmt: str = ".3g") -> str:
    median, low, high = band
    if not math.isfinite(median):
        return "—"
    if low == high:
        return format(median, fmt)
    return f"{median:{fmt}} [{low:{fmt}}–{high:{fmt}}]"


def _verdict(row: FamilySummary) -> str:
    if row.beyond_seed_spread is None:
        return "unknown (one seed)"
    return "yes" if row.beyond_seed_spread else "no"


def _nearest_text(names: list[str]) -> str:
    labels = {"ridge_lambda": "ridge_λ", "gd_k": "GD-k", "least_squares": "least squares", "ridge": "ridge",
              "dmmse": "dMMSE_M", "none": "—"}
    counts = {name: names.count(name) for name in dict.fromkeys(names)}
    if len(counts) == 1:
        return labels[names[0]]
    return ", ".join(f"{labels[name]} ({n})" for name, n in counts.items())


def _table_markdown(rows: list[FamilySummary], edges: dict[tuple[float, str, str], tuple[bool, bool]]) -> list[str]:
    head = ["M", "at", "step", "to ridge", "to dMMSE_M", "nearest ridge_λ", "its λ", "nearest GD-k", "its kη",
            "nearest family", "nearer than ridge by", "beyond seed spread", "nearest overall"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for row in rows:
        lam_edge, gd_edge = edges[(row.M, row.point, row.probe)]
        steps = sorted(set(row.steps))
        cells = [
            format_task_count(row.M),
            row.point,
            ", ".join(map(str, steps)),
            _cell(row.dist_ridge),
            _cell(row.dist_dmmse),
            _cell(row.dist_ridge_lambda),
            _cell(row.ridge_penalty) + (" (grid edge)" if lam_edge else ""),
            _cell(row.dist_gd_k),
            _cell(row.gd_time) + (" (grid edge)" if gd_edge else ""),
            _nearest_text(row.nearest),
            _cell(tuple(100 * v for v in row.relative_margin), ".0f") + " %",
            _verdict(row),
            _nearest_text(row.nearest_overall),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def family_findings(outputs: Mapping[float, xr.Dataset]) -> FamilyFindings:
    """The findings section: table, Markdown lines and JSON of the family fit of every run.

    Args:
        outputs: ``M → outputs.zarr`` dataset (stacked over seeds by
            :func:`transient_ridge.seeds.runs_by_M`, or one seed), with the fitted-family
            variables of :func:`transient_ridge.families.build_family_fit`.
    Returns:
        :class:`FamilyFindings`; with stores that lack the fit, a section body that says so and
        how to rebuild them (``points`` and ``table`` empty).
    """
    try:
        points = family_points(outputs)
    except KeyError as error:
        text = str(error).strip("'\"")
        return FamilyFindings([], [], [f"Not measured: {text}."], {"not_measured": text})
    table = summarize_points(points)
    edges: dict[tuple[float, str, str], tuple[bool, bool]] = {}
    for p in points:
        lam, gd = edges.get((p.M, p.point, p.probe), (False, False))
        edges[(p.M, p.point, p.probe)] = (lam or p.ridge_penalty_at_edge, gd or p.gd_at_edge)
    seeds = sorted({p.seed for p in points if p.seed is not None})
    lines = [
        "What each run is nearest, at its t_crit (the checkpoint of minimal OOD loss) and at the end of training: "
        "the nearest member of ridge_λ (ridge with penalty λ; ridge itself is λ = σ²), of GD-k (k steps of "
        "in-context gradient descent from w = 0 with step η on |Y − Xw|² / 2n) and least squares, found on the "
        "grids of the config section `families` (docs/stores.md, \"Fitted predictor families\"). Distances are mean "
        "squared prediction differences over sequences and tokens, as dist_ridge. 'Nearer than ridge by': (distance "
        "to ridge − distance to the nearest fitted member) / distance to ridge. 'Beyond seed spread': every seed's "
        "margin exceeds the spread (max − min over seeds) of the distance to ridge"
        + (f"; train seeds {', '.join(map(str, seeds))}, cells give the median [min–max] over them." if seeds else
           "; with one train seed the spread is unknown.")
        + " 'Nearest overall' counts ridge and dMMSE_M too. '(grid edge)': the fitted value is an end of its grid, "
        "so the nearest member may lie beyond it.",
    ]
    for probe in PROBES:
        rows = [row for row in table if row.probe == probe]
        lines += ["", f"On {_PROBE_TEXT[probe]}:", "", *_table_markdown(rows, edges)]
    report = {
        "definition": {
            "families": list(FITTED_FAMILIES),
            "margin": "dist_ridge - dist of the nearest fitted family member",
            "seed_spread": "max - min over train seeds of dist_ridge at the point",
            "beyond_seed_spread": "every seed's margin exceeds the seed spread (null with one seed)",
        },
        "points": [_clean(asdict(p)) for p in points],
        "summary": [_clean(asdict(row)) for row in table],
    }
    return FamilyFindings(points, table, lines, report)


def _clean(value: object) -> object:
    """JSON-safe: non-finite floats as strings, tuples as lists, numpy scalars as Python ones."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value
