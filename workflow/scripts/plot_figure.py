"""Snakemake entry point of the figure rules: open the stores, draw figures, save them.

A group rule (``transient_ridge.figures.FIGURE_GROUPS``) draws several figures in this one
process, each store opened once; a `<name>_raw` rule is a group of one. Expects from the rule:

- ``params.figures``: the figure names (of ``transient_ridge.figures.FIGURE_NAMES``), and
  per figure the outputs ``<name>_pdf`` and ``<name>_png``; each figure is given only the
  stores it reads;
- ``params.settings``: a dict of ``FigureSettings`` fields (``smoothing_window``,
  ``raw``, ``M_values``, ``max_pcs``, ``llc_error``), optional;
- ``input.outputs``: every run's ``outputs.zarr`` (M is read from each store's
  ``M`` attribute; with a seed axis, every seed's, stacked by their ``seed``
  attribute), and as the figure needs them ``input.baselines``,
  ``input.pca``, ``input.llc``, ``input.llc_calibration`` (one path each);
- ``log[0]``;
- the experiment's config block, whose ``seeds.train`` (an int or a list) says
  whether the runs have a seed axis.

The logic is in ``main`` so that it runs (and is tested) without Snakemake.
"""


import functools
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import xarray as xr

from transient_ridge.config import ExperimentConfig
from transient_ridge.figures import FigureInputs, draw_figure, figure_reads, save_figure
from transient_ridge.provenance import start_job
from transient_ridge.seeds import runs_by_M

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
    seed_axis: bool = False,
) -> None:
    """Draw ``figure`` from the stores at the given paths and write ``pdf`` and ``png``.

    ``open_dataset`` defaults to ``transient_ridge.store.open_dataset``. With
    ``seed_axis`` the runs of each M (one per train seed) are stacked along ``seed``.
    """
    if open_dataset is None:
        from transient_ridge.store import open_dataset
    datasets: list[xr.Dataset] = []
    seen: dict[tuple[float, Any], PathLike] = {}
    for path in _paths(outputs):
        ds = open_dataset(path)
        if "M" not in ds.attrs:
            raise KeyError(f"{path} has no 'M' attribute; is it a run's outputs.zarr?")
        M = float(ds.attrs["M"])  # ∞ is stored as the string "inf"
        key = (M, ds.attrs.get("seed") if seed_axis else None)
        if key in seen:
            raise ValueError(f"two outputs stores for M={M}{f', seed {key[1]}' if seed_axis else ''}: {seen[key]} and {path}")
        seen[key] = path
        datasets.append(ds)
        log.info("outputs M=%s: %s (%d checkpoints)", ds.attrs["M"], path, ds.sizes.get("step", 0))
    runs = runs_by_M(datasets, seed_axis=seed_axis)
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


def _seed_axis(smk: Any) -> bool:
    """Whether the wildcard experiment lists several train seeds (its runs have a seed axis)."""
    experiment = smk.wildcards.exp
    return ExperimentConfig.from_dict(experiment, smk.config["experiments"][experiment]).seeds.has_seed_axis


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
    from transient_ridge.store import open_dataset

    open_once = functools.cache(open_dataset)  # a store read by several figures of the group is opened once
    seed_axis = _seed_axis(smk)
    for name in smk.params.figures:
        pdf, png = getattr(smk.output, f"{name}_pdf"), getattr(smk.output, f"{name}_png")
        reads = figure_reads(name)
        stores = {key: smk.input.get(key) if key in reads else None
                  for key in ("outputs", "baselines", "pca", "llc", "llc_calibration")}
        try:
            main(name, **stores, settings=smk.params.get("settings"), pdf=pdf, png=png,
                 open_dataset=open_once, seed_axis=seed_axis)
        except Exception:
            log.exception("figure %s failed", name)
            raise


if "snakemake" in globals():
    _from_snakemake(snakemake)  # type: ignore[name-defined]  # noqa: F821
