"""Snakemake entry point of the figure rules: open the stores, draw one figure, save it.

Expects from the rule:

- ``params.figure``: the figure name (one of ``transient_ridge.figures.FIGURE_NAMES``);
- ``params.settings``: a dict of ``FigureSettings`` fields (``smoothing_window``,
  ``raw``, ``M_values``, ``max_pcs``, ``llc_error``), optional;
- ``input.outputs``: every run's ``outputs.zarr`` (M is read from each store's
  ``M`` attribute), and as the figure needs them ``input.baselines``,
  ``input.pca``, ``input.llc``, ``input.llc_calibration`` (one path each);
- ``output.pdf``, ``output.png``; ``log[0]``.

The logic is in ``main`` so that it runs (and is tested) without Snakemake.
"""


import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import xarray as xr

from transient_ridge.figures import FigureInputs, draw_figure, save_figure
from transient_ridge.provenance import start_job

log = logging.getLogger("plot_figure")

PathLike = str | os.PathLike[str]


def _paths(value: PathLike | Iterable[PathLike] | None) -> list[PathLike]:
    """Snakemake gives a single path as a string and several as a list; accept both."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return list(value)


def _single(name: str, value: PathLike | Iterable[PathLike] | None) -> PathLike | None:
    paths = _paths(value)
    if len(paths) > 1:
        raise ValueError(f"input {name!r} must be one store, got {len(paths)}: {paths}")
    return paths[0] if paths else None


def main(
    figure: str,
    *,
    outputs: PathLike | Iterable[PathLike] | None,
    pdf: PathLike,
    png: PathLike,
    baselines: PathLike | None = None,
    pca: PathLike | None = None,
    llc: PathLike | None = None,
    llc_calibration: PathLike | None = None,
    settings: Mapping[str, Any] | None = None,
    dpi: int = 200,
    open_dataset: Callable[[PathLike], xr.Dataset] | None = None,
) -> None:
    """Draw ``figure`` from the stores at the given paths and write ``pdf`` and ``png``.

    ``open_dataset`` defaults to ``transient_ridge.store.open_dataset``.
    """
    if open_dataset is None:
        from transient_ridge.store import open_dataset
    runs: dict[float, xr.Dataset] = {}
    for path in _paths(outputs):
        ds = open_dataset(path)
        if "M" not in ds.attrs:
            raise KeyError(f"{path} has no 'M' attribute; is it a run's outputs.zarr?")
        M = float(ds.attrs["M"])  # ∞ is stored as the string "inf"
        if M in runs:
            raise ValueError(f"two outputs stores for M={M}: one of them is {path}")
        runs[M] = ds
        log.info("outputs M=%s: %s (%d checkpoints)", ds.attrs["M"], path, ds.sizes.get("step", 0))
    stores: dict[str, xr.Dataset | None] = {}
    for name, value in (("baselines", baselines), ("pca", pca), ("llc", llc), ("llc_calibration", llc_calibration)):
        path = _single(name, value)
        stores[name] = None if path is None else open_dataset(path)
        if path is not None:
            log.info("%s: %s", name, path)
    log.info("drawing %s with settings %s", figure, dict(settings or {}))
    fig = draw_figure(figure, FigureInputs(outputs=runs, **stores), settings)
    save_figure(fig, pdf, png, dpi=dpi)
    log.info("wrote %s and %s", pdf, png)


def _from_snakemake(smk: Any) -> None:
    # Warnings and errors from every library, progress from this script only
    # (fontTools logs every PDF font subset at INFO).
    logging.basicConfig(
        filename=smk.log[0],
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    log.setLevel(logging.INFO)
    logging.captureWarnings(True)
    start_job(smk)
    try:
        main(
            smk.params.figure,
            outputs=smk.input.get("outputs"),
            baselines=smk.input.get("baselines"),
            pca=smk.input.get("pca"),
            llc=smk.input.get("llc"),
            llc_calibration=smk.input.get("llc_calibration"),
            settings=smk.params.get("settings"),
            pdf=smk.output.pdf,
            png=smk.output.png,
        )
    except Exception:
        log.exception("figure %s failed", smk.params.get("figure"))
        raise


if "snakemake" in globals():
    _from_snakemake(snakemake)  # type: ignore[name-defined]  # noqa: F821
