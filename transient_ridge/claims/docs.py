"""Numbers in the docs come from the checker: rewrite the marked blocks of README.md and docs/ from claims.json.

A block is delimited by two HTML comments naming the experiment and the kind of block:

    <!-- claims:mini:summary -->
    (generated: replaced on every run)
    <!-- /claims:mini:summary -->

Kinds (:data:`BLOCKS`), each for one seed or a seed axis:

* ``summary``: the verdict counts, then every claim with its verdict and finding;
* ``verdict``: one paragraph: the counts, the claims grouped by verdict (one seed) and the
  transience of each intermediate M;
* ``account``: the loss–complexity claims (Fig. 3), each with its finding per seed;
* ``table``: every claim's verdict and finding (per seed with a seed axis) as a table;
* ``seeds_table``: the transience measure of every intermediate M (and seed).

``python -m transient_ridge.claims.docs results/mini/claims.json [results/transient/claims.json …]``
rewrites, in README.md, docs/mini.md, docs/transient.md and docs/llc.md (or the files
given with ``--docs``), the
blocks of the experiments whose claims.json is given, and leaves every other block as
it is; ``--check`` changes nothing and exits 1 when a block is out of date. Rendering
depends on claims.json alone, so a second run changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ._claim import FAILS, HOLDS, NOT_TESTABLE
from ._transience import APPROACH_MAX, OOD_DEPTH_MAX, TRANSIENT_OOD_RISE, TRANSIENT_RIDGE_RISE

__all__ = ["BLOCKS", "ACCOUNT_CLAIMS", "render_block", "rewrite_blocks", "main"]

# A marker is a line of its own (a marker quoted inside a sentence is not one).
OPEN = re.compile(r"^<!-- claims:(?P<exp>[\w.-]+):(?P<kind>\w+) -->$", re.M)
BLOCK = re.compile(
    r"^(?P<open><!-- claims:(?P<exp>[\w.-]+):(?P<kind>\w+) -->\n)(?P<body>.*?)"
    r"^(?P<close><!-- /claims:(?P=exp):(?P=kind) -->)$",
    re.S | re.M,
)
DEFAULT_DOCS = ("README.md", "docs/mini.md", "docs/transient.md", "docs/llc.md")
# The claims of the loss–complexity account (Carroll et al. 2025, Fig. 3), in report order.
ACCOUNT_CLAIMS = ("loss_gap_shrinks_with_M", "llc_grows_with_M_for_dmmse_runs", "llc_crosses_M_inf",
                  "loss_complexity_tradeoff", "tradeoff_predicts_transience")


def _source(report: Mapping) -> str:
    """Where the numbers come from: ``"`results/mini/claims.json`, commit 53f944c"`` (``(dirty)`` when the
    tree had uncommitted changes)."""
    provenance = report.get("provenance", {})
    commit = str(provenance.get("git_commit", ""))[:7]
    where = f"`results/{report['experiment']}/claims.json`"
    dirty = " (dirty)" if provenance.get("git_dirty") is True else ""
    return f"{where}, commit {commit}{dirty}" if commit else where


def _per_seed(claim: Mapping) -> dict[str, Mapping]:
    """``seed → {verdict, finding, …}`` of one claim of claims.json (``{"": claim}`` without a seed axis)."""
    return dict(claim["per_seed"]) if "per_seed" in claim else {"": claim}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _llc_state(report: Mapping) -> str:
    """``"; the ε calibration rule satisfied, 15 of 15 LLC estimates sound"`` (empty without those sections)."""
    parts = []
    calibration = report.get("llc_calibration")
    if calibration:
        parts.append(f"the ε calibration rule {'satisfied' if calibration['rule_satisfied'] else 'NOT satisfied'}")
    health = report.get("llc_health")
    if health:
        tables = health.values() if "seeds" in report else [health]
        counts = [sum(t["counts"].values()) for t in tables], [t["counts"].get("sound", 0) for t in tables]
        parts.append(f"{sum(counts[1])} of {sum(counts[0])} LLC estimates sound")
    return "; " + ", ".join(parts) if parts else ""


def _summary(report: Mapping) -> str:
    lines = [f"**{report['summary'].rstrip('.')}** ({_source(report)}{_llc_state(report)}):", ""]
    for c in report["claims"]:
        verdict = c["verdict"] if c["holds"] else f"**{c['verdict']}**"
        finding = "" if "seeds" in report else f": {_one_line(c['finding'])}"
        lines.append(f"- `{c['name']}` {verdict}{finding}")
    return "\n".join(lines) + "\n"


def _span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{low:{fmt}}–{high:{fmt}}"


def _transience_by_M(report: Mapping) -> str:
    """Per intermediate M over seeds: the approach and OOD depth (their range) and how often it rises."""
    claim = next((c for c in report["claims"] if c["name"] == "transient_ridge"), None)
    if claim is None:
        return ""
    runs: dict[str, list[Mapping]] = {}
    for one in _per_seed(claim).values():
        for M, m in one["evidence"].get("runs", {}).items():
            runs.setdefault(M, []).append(m)
    parts = []
    for M, ms in sorted(runs.items(), key=lambda item: float(item[0])):
        approach = [m["approach"] for m in ms if m.get("approach") is not None]
        depth = [m["ood_depth"] for m in ms if m.get("ood_depth") is not None]
        near = (f"approach {_span(approach, '.2f')}, OOD depth {_span(depth, '.2f')}" if approach and depth
                else "approach not measured")
        parts.append(f"M = {M} {near}, rises in {sum(bool(m['rises']) for m in ms)} of {len(ms)}")
    return "; ".join(parts)


def _verdict(report: Mapping) -> str:
    groups: dict[str, list[str]] = {}
    for c in report["claims"]:
        groups.setdefault(c["verdict"], []).append(f"`{c['name']}`")
    text = f"**{report['summary'].rstrip('.')}** ({_source(report)}{_llc_state(report)})."
    if "seeds" not in report:  # with seeds, each claim's line is the summary block's
        text += " " + "; ".join(f"{verdict}: {', '.join(names)}" for verdict, names in groups.items()) + "."
    transient = next((c for c in report["claims"] if c["name"] == "transient_ridge"), None)
    if transient is not None:
        per = _per_seed(transient)
        seen: dict[str, int] = {}
        for claim in per.values():
            for M in claim["evidence"].get("transient_M", []):
                seen[M] = seen.get(M, 0) + 1
        n = f" of {len(per)} seeds" if "seeds" in report else ""
        text += (" Transient M: " + (", ".join(f"M = {M}" + (f" in {k}{n}" if n else "") for M, k in seen.items())
                                     if seen else "none" + (f", in 0{n}" if n else "")) + ".")
        if by_M := _transience_by_M(report):
            text += f" Per intermediate M: {by_M}."
    return text + "\n"


def _account(report: Mapping) -> str:
    lines = []
    for c in (c for c in report["claims"] if c["name"] in ACCOUNT_CLAIMS):
        per = _per_seed(c)
        if list(per) == [""]:
            lines.append(f"- `{c['name']}` **{c['verdict']}**: {_one_line(c['finding'])}.")
        else:
            lines.append(f"- `{c['name']}` **{c['verdict']}**: " + "; ".join(
                f"seed {seed}: {one['verdict']} ({_one_line(one['finding'])})" for seed, one in per.items()) + ".")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _table(report: Mapping) -> str:
    if "seeds" not in report:
        lines = ["| claim | verdict | finding |", "| --- | --- | --- |"]
        lines += [f"| `{c['name']}` | {c['verdict']} | {_cell(c['finding'])} |" for c in report["claims"]]
    else:
        seeds = [str(s) for s in report["seeds"]]
        lines = ["| claim | over seeds | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                 "| --- | --- | " + " | ".join("---" for _ in seeds) + " |"]
        for c in report["claims"]:
            per = _per_seed(c)
            cells = [f"{per[s]['verdict']}: {_cell(per[s]['finding'])}" if s in per else "—" for s in seeds]
            lines.append(f"| `{c['name']}` | {c['verdict']} | " + " | ".join(cells) + " |")
    return "\n".join([f"From {_source(report)}{_llc_state(report)}:", "", *lines]) + "\n"


def _pass(text: str, passed: bool) -> str:
    return f"**{text}**" if passed else text


def _step(step: int) -> str:
    return f"{int(step):,}".replace(",", " ")


def _seeds_table(report: Mapping) -> str:
    claim = next((c for c in report["claims"] if c["name"] == "transient_ridge"), None)
    if claim is None:
        raise ValueError(f"{_source(report)} has no transient_ridge claim to tabulate")
    rows: list[tuple[str, str, Mapping]] = []
    for seed, one in _per_seed(claim).items():
        rows += [(M, seed, m) for M, m in one["evidence"].get("runs", {}).items()]
    rows.sort(key=lambda r: (float(r[0]), int(r[1]) if r[1] else 0))
    with_seed = "seeds" in report
    head = ["M", *(["seed"] if with_seed else []), "approach", "OOD depth", "OOD min (step)", "OOD rise",
            "ridge rise", "dMMSE end / at OOD min", "rises", "transient"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for M, seed, m in rows:
        approach, depth = m.get("approach"), m.get("ood_depth")
        cells = [
            M, *([seed] if with_seed else []),
            "—" if approach is None else _pass(f"{approach:.2f}", approach <= APPROACH_MAX),
            "—" if depth is None else _pass(f"{depth:.2f}", depth <= OOD_DEPTH_MAX),
            f"{m['ood_min']:.3g} ({_step(m['ood_min_step'])})",
            _pass(f"{m['ood_rise']:+.1%}".replace("%", " %"), m["ood_rise"] >= TRANSIENT_OOD_RISE),
            _pass(f"{m['ridge_rise']:+.1%}".replace("%", " %"), m["ridge_rise"] >= TRANSIENT_RIDGE_RISE),
            f"{m['dmmse_final_over_at_ood_min']:.2f}",
            _pass("yes", True) if m["rises"] else "no",
            _pass("yes", True) if m["is_transient"] else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


BLOCKS: dict[str, Callable[[Mapping], str]] = {
    "summary": _summary,
    "verdict": _verdict,
    "account": _account,
    "table": _table,
    "seeds_table": _seeds_table,
}


def render_block(kind: str, report: Mapping) -> str:
    """The body of a ``kind`` block (ending in a newline) from a claims.json payload."""
    if kind not in BLOCKS:
        raise ValueError(f"block kind {kind!r} is not one of {sorted(BLOCKS)}")
    return BLOCKS[kind](report)


def rewrite_blocks(text: str, reports: Mapping[str, Mapping], where: str = "text") -> tuple[str, list[str]]:
    """``text`` with every block of an experiment in ``reports`` (name → claims.json payload) re-rendered.

    Returns the new text and the names (``claims:exp:kind``) of the blocks rendered. Blocks of
    other experiments are left as they are. Raises ``ValueError`` for a block that is not closed
    or of an unknown kind.
    """
    opened = [(m["exp"], m["kind"]) for m in OPEN.finditer(text)]
    closed = [(m["exp"], m["kind"]) for m in BLOCK.finditer(text)]
    if opened != closed:
        missing = [f"claims:{e}:{k}" for e, k in opened if (e, k) not in closed]
        raise ValueError(f"{where}: block {missing or opened} opened but not closed by <!-- /claims:EXP:KIND -->")
    rendered: list[str] = []

    def replace(match: re.Match) -> str:
        if match["exp"] not in reports:
            return match[0]
        if match["kind"] not in BLOCKS:
            raise ValueError(f"{where}: block claims:{match['exp']}:{match['kind']}: kind {match['kind']!r} is not "
                             f"one of {sorted(BLOCKS)}")
        rendered.append(f"claims:{match['exp']}:{match['kind']}")
        return match["open"] + render_block(match["kind"], reports[match["exp"]]) + match["close"]

    return BLOCK.sub(replace, text), rendered


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m transient_ridge.claims.docs", description=__doc__.split("\n")[0])
    parser.add_argument("claims", nargs="+", type=Path, help="claims.json of each experiment whose blocks to rewrite")
    parser.add_argument("--docs", nargs="+", type=Path, default=[Path(p) for p in DEFAULT_DOCS],
                        help=f"Markdown files holding the blocks (default: {' '.join(DEFAULT_DOCS)})")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is out of date")
    args = parser.parse_args(argv)
    reports = {}
    for path in args.claims:
        if not path.is_file():
            parser.error(f"{path} does not exist; build it with `snakemake -c 2 {path}`")
        report = json.loads(path.read_text())
        reports[report["experiment"]] = report
    stale = []
    for doc in args.docs:
        text = doc.read_text()
        new, rendered = rewrite_blocks(text, reports, str(doc))
        state = "unchanged" if new == text else ("out of date" if args.check else "rewritten")
        print(f"{doc}: {', '.join(rendered) or 'no block of ' + ', '.join(sorted(reports))} {state}")
        if new != text:
            stale.append(doc)
            if not args.check:
                doc.write_text(new)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
