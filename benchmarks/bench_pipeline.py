"""Benchmark: the whole pipeline of one experiment from a clean results folder, with the per-rule breakdown.

    python benchmarks/bench_pipeline.py                 # mini, 2 cores, in a temporary copy of the repo
    python benchmarks/bench_pipeline.py --target transient --cores 2

Runs `snakemake -c CORES TARGET --directory <fresh temporary folder>` (so nothing
of results/ is reused), then reads Snakemake's `benchmark:` files and prints the
wall time of each rule (summed over its jobs) next to the total. The
reference for the ratios is the total wall time of the same run.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rule_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts  # e.g. ('train', 'M16.tsv') or ('pca.tsv',)
    if parts[0] == "figures":
        return "figures"
    return parts[0].removesuffix(".tsv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="all")
    parser.add_argument("--experiment", default="mini")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    command = [snakemake, "-c", str(args.cores), args.target, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    total = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stderr[-5000:])
        raise SystemExit(f"pipeline failed; working directory kept at {workdir}")
    root = workdir / "results" / args.experiment / "benchmarks"
    per_rule: dict[str, float] = defaultdict(float)
    jobs: dict[str, int] = defaultdict(int)
    for path in root.rglob("*.tsv"):
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        per_rule[rule_of(path, root)] += float(row["s"])
        jobs[rule_of(path, root)] += 1
    print(f"snakemake -c {args.cores} {args.target}: {total:.0f} s wall in total")
    print(f"{'rule':18s} {'jobs':>4s} {'job-seconds':>12s} {'share of wall x cores':>22s}")
    for rule, seconds in sorted(per_rule.items(), key=lambda item: -item[1]):
        print(f"{rule:18s} {jobs[rule]:4d} {seconds:12.1f} {seconds / (total * args.cores):21.1%}")
    claims = workdir / "results" / args.experiment / "claims.md"
    if claims.exists():
        print(claims.read_text().split("\n\n")[1])
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
