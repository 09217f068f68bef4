"""claims.md and claims.json: one section-based report builder, for one seed or many.

A :class:`Report` holds each seed's checked claims and a list of :class:`Section`
(title, Markdown lines, JSON payload). The claims come first (the verdict counts, a
summary table, one section per claim), then the sections in the order they were
added. :meth:`Report.add_per_seed` maps a section builder over the seeds: with a
seed axis each seed's lines go under "### Train seed s" and the payload is keyed by
seed; without one the section is the one seed's. Adding a section is one call:

    report.add_per_seed("findings", "Fitted predictor families", lambda seed: (lines, payload))
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ._claim import FAILS, HOLDS, NOT_TESTABLE, Claim, ClaimOverSeeds, Tally, summarize
from ._transience import APPROACH_MAX, OOD_DEPTH_MAX

__all__ = ["Section", "Report", "json_safe"]

# Evidence keys drawn as tables (a list of row dicts, or the transience runs) rather than as "- key: value".
_TABLES = ("runs", "rows", "steps", "tradeoff_rows", "prediction_rows")  # (``_over_seeds`` draws each)


@dataclass(frozen=True)
class Section:
    """One part of the report after the claims: ``## title``, its Markdown ``lines``, and ``payload``
    under ``key`` in claims.json (``payload`` keyed by train seed when made per seed with a seed axis)."""

    key: str
    title: str
    lines: list[str]
    payload: object


def json_safe(value: object) -> object:
    """JSON-safe: non-finite floats as strings (``"inf"``, ``"nan"``), numpy scalars as Python ones, keys as strings."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _fmt(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return "—" if value is None else str(value)


def _cell_text(value: object) -> str:
    return _fmt(value).replace("|", "\\|")


def _rows_table(rows: list[dict]) -> list[str]:
    """A list of flat dicts as a Markdown table (columns: the keys of all rows, in order of appearance)."""
    if not rows:
        return []
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["", "| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    return lines + ["| " + " | ".join(_cell_text(row.get(c)) for c in columns) + " |" for row in rows]


_RUNS_NOTE = (
    "(approach: the closest smoothed distance to ridge over the ridge–dMMSE gap, the distance between the two "
    "predictors themselves on q_M data; 1 means the run never got nearer to ridge than dMMSE_M is. OOD depth: "
    "where the smoothed OOD minimum lies from ridge's OOD loss (0) to dMMSE_M's (1). A run is transient when it "
    f"rises by the rules above and both ratios are at most {APPROACH_MAX} / {OOD_DEPTH_MAX}; 'rises only': the "
    "rise rules hold, the approach does not.)"
)


def _ratio_cell(value: float | None, fmt: str = ".2f") -> str:
    return "—" if value is None else format(value, fmt)


def transience_row(m: Mapping) -> str:
    """``"yes"``, ``"rises only"`` or ``"no"``: a run's verdict in the transience table."""
    if m["is_transient"]:
        return "yes"
    return "rises only" if m.get("rises") else "no"


def runs_table(rows: list[tuple[str, int | None, Mapping]]) -> list[str]:
    """The transience table: one row per (M label, seed or ``None``, ``TransienceMeasure`` as a dict)."""
    with_seed = any(seed is not None for _, seed, _ in rows)
    head = ["M", *(["seed"] if with_seed else []), "OOD min (step)", "OOD depth", "OOD rise", "ridge dist min (step)",
            "ridge–dMMSE gap", "ridge dist min / gap (approach)", "ridge rise", "dMMSE end / at OOD min", "transient"]
    lines = ["", "| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for name, seed, m in rows:
        cells = [
            name, *([str(seed)] if with_seed else []),
            f"{m['ood_min']:.4g} ({m['ood_min_step']})", _ratio_cell(m.get("ood_depth")), f"{m['ood_rise']:+.1%}",
            f"{m['ridge_min']:.4g} ({m['ridge_min_step']})", _ratio_cell(m.get("ridge_dmmse_gap"), ".4g"),
            _ratio_cell(m.get("approach")), f"{m['ridge_rise']:+.1%}", f"{m['dmmse_final_over_at_ood_min']:.3f}",
            transience_row(m),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", _RUNS_NOTE]


def _pm(value: float | None, sem: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g} ± {sem:.2g}" if sem is not None and math.isfinite(sem) else f"{value:.{digits}g}"


def tradeoff_table(rows: list[dict]) -> list[str]:
    """The loss-complexity rows (``tradeoff_rows`` / ``prediction_rows``): loss against ridge on q_M, LLC
    against M = inf, each with its s.e., and for predictions the predicted and observed transience."""
    predicted = any("predicted" in r for r in rows)
    lines = ["", "| M | status | loss − ridge (q_M) | loss vs ridge | LLC | LLC at M = inf | LLC vs M = inf |"
             + (" predicted transient | observed | agree |" if predicted else ""),
             "| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- | --- |" if predicted else "")]
    for r in rows:
        if "llc" not in r:  # not dMMSE-like: nothing measured
            lines.append(f"| {r['M']} | — | — | — | — | — | — | n/a ({r['why']}) | {_fmt(r['observed'])} | — |")
            continue
        cells = (f"| {r['M']} | {r['status']} | {_pm(r['loss_minus_ridge'], r['loss_minus_ridge_sem'], 3)} "
                 f"({_pm(r['loss'], r['loss_sem'])} vs {_pm(r['ridge_loss'], r['ridge_loss_sem'])}) | "
                 f"{r['loss_vs_ridge']} | {_pm(r['llc'], r['llc_sem'], 3)} | {_pm(r['llc_M_inf'], r['llc_M_inf_sem'], 3)} "
                 f"| {r['llc_vs_M_inf']} |")
        if predicted:
            guess = "n/a" if r["predicted"] is None else _fmt(r["predicted"])
            agree = "—" if r["agree"] is None else ("yes" if r["agree"] else "**no**")
            cells += f" {guess} | {_fmt(r['observed'])} | {agree} |"
        lines.append(cells)
    return lines


def _table(key: str, value: object) -> list[str]:
    """An evidence table: the transience runs, the tradeoff rows, or any list of row dicts."""
    if key == "runs":
        return runs_table([(name, None, m) for name, m in value.items()])
    if key in ("tradeoff_rows", "prediction_rows"):
        return tradeoff_table(value)
    return ["", f"{key.capitalize()}:", *_rows_table(value)]


def _evidence_lines(evidence: dict) -> list[str]:
    """One seed's evidence: scalars and small dicts as a list, then its tables."""
    lines = [f"- {key}: {_fmt(value)}" for key, value in evidence.items() if key not in _TABLES]
    for key in _TABLES:
        if evidence.get(key):
            lines += _table(key, evidence[key])
    return lines


def _seed_cell(claim: Claim | None) -> str:
    if claim is None:
        return "—"
    return {HOLDS: "yes", FAILS: "no", NOT_TESTABLE: "not testable"}[claim.verdict]


class Report:
    """The claims report of one experiment (module docstring).

    Args:
        experiment: the experiment's name.
        checked: ``seed → that seed's claims`` (``claims.check_seeds``); the one key ``None``
            for an experiment without a seed axis.
    """

    def __init__(self, experiment: str, checked: Mapping[int | None, list[Claim]]) -> None:
        if not checked:
            raise ValueError("no seed's claims to report; pass {None: claims} for an experiment without a seed axis")
        if None in checked and len(checked) > 1:
            raise ValueError(f"checked mixes the no-seed key None with train seeds {sorted(s for s in checked if s)}")
        self.experiment = experiment
        self.checked = dict(checked)
        self.seeds: list[int] = sorted(s for s in checked if s is not None)  # [] without a seed axis
        self.sections: list[Section] = []

    @property
    def summary(self) -> list[ClaimOverSeeds]:
        """Per claim, its verdict in every seed (``claims.summarize``)."""
        return summarize(self.checked)

    @property
    def tally(self) -> Tally:
        """Every verdict counted: one per claim, or one per claim and seed."""
        return Tally.of(c.verdict for claims in self.checked.values() for c in claims)

    def headline(self) -> str:
        """The counts in one sentence (every verdict counted)."""
        tally = self.tally
        if not self.seeds:
            return f"{tally.of_claims()}."
        every = sum(c.tally.holds == len(self.seeds) for c in self.summary)
        return (f"Of {tally.total} verdicts ({len(self.summary)} claims x {len(self.seeds)} seeds): {tally.holds} hold, "
                f"{tally.fails} do not hold, {tally.not_testable} not testable; {every} of {len(self.summary)} claims "
                "hold in every seed.")

    def add(self, key: str, title: str, lines: list[str], payload: object) -> Report:
        """Append a section; one with no lines appears in claims.json only."""
        if key in ("experiment", "seeds", "counts", "summary", "claims", "provenance") or key in self.keys():
            raise ValueError(f"section key {key!r} is taken; taken: {sorted(self.keys())}")
        self.sections.append(Section(key, title, list(lines), payload))
        return self

    def add_per_seed(self, key: str, title: str, build: Callable[[int | None], tuple[list[str], object]]) -> Report:
        """Append a section made by ``build(seed) -> (lines, payload)`` for every seed (module docstring)."""
        if not self.seeds:
            lines, payload = build(None)
            return self.add(key, title, lines, payload)
        lines, payload = [], {}
        for seed in self.seeds:
            seed_lines, payload[seed] = build(seed)
            if seed_lines:
                lines += ["", f"### Train seed {seed}", "", *seed_lines]
        return self.add(key, title, lines, payload)

    def keys(self) -> list[str]:
        return [s.key for s in self.sections]

    # ------------------------------------------------------------------ Markdown

    def markdown(self) -> str:
        """claims.md: title, the counts, the summary table, each claim with its rule and numbers, the sections."""
        lines = [f"# Claims for experiment `{self.experiment}`", ""]
        if self.seeds:
            lines += [f"Train seeds: {', '.join(map(str, self.seeds))}. Each claim is checked on each seed's runs, "
                      "against that seed's M = inf.", ""]
        lines += [self.headline(), ""]
        lines += self._claims_table()
        for claim in self.summary:
            lines += ["", f"## {claim.name}: {claim.line}", "", f"Rule: {claim.statement}", ""]
            lines += self._one_seed(claim.per_seed[None]) if not self.seeds else self._over_seeds(claim)
        for section in self.sections:
            if section.lines:
                lines += ["", f"## {section.title}", *([""] if section.lines[0] else []), *section.lines]
        return "\n".join(lines) + "\n"

    def _claims_table(self) -> list[str]:
        if not self.seeds:
            rows = [c.per_seed[None] for c in self.summary]
            return ["| claim | verdict | finding |", "| --- | --- | --- |",
                    *(f"| {c.name} | {c.verdict if c.holds else f'**{c.verdict}**'} | {_cell_text(c.finding)} |"
                      for c in rows)]
        return ["| claim | over seeds | " + " | ".join(f"seed {s}" for s in self.seeds) + " |",
                "| --- | --- | " + " | ".join("---" for _ in self.seeds) + " |",
                *(f"| {c.name} | {c.line} | " + " | ".join(_seed_cell(c.per_seed.get(s)) for s in self.seeds) + " |"
                  for c in self.summary)]

    @staticmethod
    def _one_seed(claim: Claim) -> list[str]:
        evidence = _evidence_lines(claim.evidence)
        while evidence and not evidence[0]:
            evidence.pop(0)
        return [f"{'Not testable: ' if claim.reason else 'Finding: '}{claim.finding}", *([""] if evidence else []),
                *evidence]

    def _over_seeds(self, claim: ClaimOverSeeds) -> list[str]:
        seeds = [s for s in self.seeds if s in claim.per_seed]
        per = [claim.per_seed[s] for s in seeds]
        keys = list(dict.fromkeys(k for c in per for k in c.evidence if k not in _TABLES))
        lines = ["| | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                 "| --- | " + " | ".join("---" for _ in seeds) + " |",
                 "| verdict | " + " | ".join(c.verdict for c in per) + " |",
                 "| finding | " + " | ".join(_cell_text(c.finding) for c in per) + " |"]
        lines += [f"| {key} | " + " | ".join(_cell_text(c.evidence.get(key)) for c in per) + " |" for key in keys]
        runs = {s: c.evidence["runs"] for s, c in zip(seeds, per) if c.evidence.get("runs")}
        if runs:
            names = list(dict.fromkeys(name for by_M in runs.values() for name in by_M))
            lines += ["", "Per M: " + "; ".join(
                f"M = {name} transient in {sum(bool(runs[s].get(name, {}).get('is_transient')) for s in runs)} "
                f"of {len(runs)} seeds" for name in names) + "."]
            lines += runs_table([(name, s, runs[s][name]) for name in names for s in runs if name in runs[s]])
        for key in ("rows", "steps"):  # one table over seeds, with a seed column
            rows = [{"seed": s, **row} for s, c in zip(seeds, per) for row in c.evidence.get(key) or []]
            if rows:
                lines += _table(key, rows)
        for seed, c in zip(seeds, per):
            for key in ("tradeoff_rows", "prediction_rows"):
                if c.evidence.get(key):
                    lines += ["", f"Seed {seed}:", *_table(key, c.evidence[key])]
        return lines

    # ---------------------------------------------------------------------- JSON

    def payload(self) -> dict:
        """claims.json's content (JSON-safe; docs/stores.md describes the layout)."""
        tally = self.tally
        data: dict = {"experiment": self.experiment, "counts": tally.counts(), "summary": self.headline()}
        if self.seeds:
            data["seeds"] = self.seeds
            data["claims"] = [
                {"name": c.name, "statement": c.statement, "verdict": c.line, "holds": c.tally.holds == len(self.seeds),
                 "counts": c.tally.counts(), "seeds": [s for s in self.seeds if s in c.per_seed],
                 "per_seed": {s: self._claim_fields(one) for s, one in c.per_seed.items()}}
                for c in self.summary
            ]
        else:
            data["claims"] = [{"name": c.name, "statement": c.statement, "holds": c.holds, **self._claim_fields(c)}
                              for c in self.checked[None]]
        for section in self.sections:
            data[section.key] = section.payload
        return json_safe(data)

    @staticmethod
    def _claim_fields(claim: Claim) -> dict:
        return {"verdict": claim.verdict, "finding": claim.finding, "reason": claim.reason, "evidence": claim.evidence}

    def json(self, **extra: object) -> str:
        """:meth:`payload` plus ``extra`` top-level keys (e.g. ``provenance``), as indented JSON."""
        return json.dumps({**self.payload(), **json_safe(extra)}, indent=2, sort_keys=True)
