"""Markdown tables from the stores, for the README and reports.

    python -m transient_ridge.tables results/mini/baselines.zarr
"""

from __future__ import annotations

import argparse
import math

import xarray as xr

from .config import format_task_count
from .store import open_dataset

__all__ = ["baseline_loss_table"]


def baseline_loss_table(baselines: xr.Dataset) -> str:
    """Per-token OOD and in-distribution losses of ridge and dMMSE_M as a Markdown table.

    Rows: ridge on q_inf, then for each finite M dMMSE_M on q_inf and on q_M (and ridge on q_M).
    Columns: token 1..K and the mean.
    """
    tokens = [int(t) for t in baselines["token"].values]
    header = "| predictor | data | " + " | ".join(f"k={t}" for t in tokens) + " | mean |"
    rule = "| --- | --- | " + " | ".join("---" for _ in tokens) + " | --- |"

    def row(label: str, data: str, values: xr.DataArray) -> str:
        cells = " | ".join(f"{float(v):.3f}" for v in values.values)
        return f"| {label} | {data} | {cells} | {float(values.mean()):.3f} |"

    lines = [header, rule, row("ridge", "q_∞", baselines["loss_ridge_ood"])]
    for M in baselines["M"].values:
        if not math.isfinite(M):
            continue
        label = format_task_count(M)
        lines.append(row(f"dMMSE_{label}", "q_∞", baselines["loss_dmmse_ood"].sel(M=M)))
        lines.append(row(f"dMMSE_{label}", f"q_{label}", baselines["loss_dmmse_id"].sel(M=M)))
        lines.append(row("ridge", f"q_{label}", baselines["loss_ridge_id"].sel(M=M)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baselines", help="path to a baselines.zarr store")
    args = parser.parse_args(argv)
    print(baseline_loss_table(open_dataset(args.baselines)))


if __name__ == "__main__":
    main()
