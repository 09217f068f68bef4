"""LLC over training: the shape rule on known sequences, the report on a constructed llc.zarr."""

import json
import math

import numpy as np
import pytest
import xarray as xr

from transient_ridge.claims import claims_json
from transient_ridge.llc_trend import TOO_FEW, curve_shape, llc_over_training_markdown, llc_over_training_report


@pytest.mark.parametrize(
    ("values", "shape"),
    [
        # mini's measured curves (docs/llc.md, LLC over training): M = 1, 4, 16, ∞
        ([4.28, 1.90, 1.51], "falls"),
        ([6.09, 7.63, 6.62], "flat"),
        ([4.76, 10.74, 10.02], "rises"),
        ([3.87, 13.41, 13.77], "rises"),
        # interior extremes beyond 20 % of both ends
        ([2.0, 10.0, 3.0], "rises, then falls"),
        ([10.0, 2.0, 9.0], "falls, then rises"),
        # exactly at the tolerance is not a change; just past it is
        ([10.0, 12.0], "flat"),
        ([10.0, 12.01], "rises"),
        ([10.0, 7.99], "falls"),
        ([10.0, 11.9, 12.0], "flat"),
        # non-finite entries are dropped before the rule
        ([np.nan, 2.0, np.nan, 4.0], "rises"),
        ([np.nan, 2.0, np.nan], TOO_FEW),
        ([], TOO_FEW),
    ],
)
def test_curve_shape_on_known_sequences(values, shape):
    assert curve_shape(np.array(values, dtype=float)) == shape


def test_curve_shape_ignores_the_scale_and_follows_the_tolerance():
    rng = np.random.default_rng(0)
    for _ in range(200):
        v = rng.uniform(0.5, 5.0, size=rng.integers(2, 6))
        assert curve_shape(v) == curve_shape(7.3 * v)
    assert curve_shape([10.0, 13.0], tolerance=0.5) == "flat"
    assert curve_shape([10.0, 13.0], tolerance=0.2) == "rises"


def _llc_store():
    # two runs, three steps; chains: 4, traces (chain, draw) against init loss 0.25
    mean = np.array([[4.0, 6.0, 9.0], [8.0, 30.0, 4.0]])
    per_chain = np.repeat(mean[..., None], 4, axis=-1) + np.array([-1.0, 1.0, -1.0, 1.0])
    per_chain[0, 2, 3] = np.nan  # M=1, last step: one chain diverged -> unreliable
    std = np.nanstd(per_chain, axis=-1, ddof=1)
    trace = np.full((2, 3, 4, 5), 0.5)
    trace[1, 1, 0, 2] = 5.0  # M=inf, middle step: spiked (20x) -> unreliable
    failed = np.array([[0, 0, 1], [0, 0, 0]], float)
    return xr.Dataset(
        {"llc_mean": (("M", "step"), mean), "llc_std": (("M", "step"), std),
         "llc_chain": (("M", "step", "chain"), per_chain), "failed_chains": (("M", "step"), failed),
         "init_loss": (("M", "step"), np.full((2, 3), 0.25)), "loss_trace": (("M", "step", "chain", "draw"), trace)},
        coords={"M": [1.0, math.inf], "step": [100, 1000, 10000]},
    )


def test_report_uses_sound_estimates_only():
    report = llc_over_training_report(_llc_store())
    one, inf = report["runs"]
    assert one["M"] == "1" and inf["M"] == "inf" and report["steps"] == [100, 1000, 10000]
    assert one["status"] == ["sound", "sound", "unreliable"]
    assert inf["status"] == ["sound", "unreliable", "sound"]
    # M=1: 4 -> 6 (sound) rises; the unreliable 9 is not used
    assert one["shape"] == "rises" and one["last_over_first"] == pytest.approx(1.5)
    assert (one["first_step"], one["last_step"]) == (100, 1000)
    # M=inf: the spiked 30 in the middle would make it "rises, then falls"; without it 8 -> 4 falls
    assert inf["shape"] == "falls" and inf["last_over_first"] == pytest.approx(0.5)
    # s.e. = std over healthy chains / sqrt(their count), from a plain loop
    chains = _llc_store()["llc_chain"].values
    for i, run in enumerate(report["runs"]):
        for j in range(3):
            ok = chains[i, j][np.isfinite(chains[i, j])]
            assert run["llc_sem"][j] == pytest.approx(np.std(ok, ddof=1) / math.sqrt(ok.size))


def test_report_leaves_unrecorded_steps_empty_and_reaches_markdown_and_json():
    store = _llc_store()
    store["failed_chains"][0, 0] = np.nan  # M=1 has no estimate at step 100
    store["llc_mean"][0, 0] = np.nan
    report = llc_over_training_report(store)
    assert report["runs"][0]["llc_mean"][0] is None and report["runs"][0]["status"][0] is None
    assert report["runs"][0]["shape"] == TOO_FEW and math.isnan(report["runs"][0]["last_over_first"])
    text = "\n".join(llc_over_training_markdown(report))
    assert "| M | step 100 | step 1000 | step 10000 | shape | last / first sound |" in text
    assert "| 1 | — | 6 ± 0.58 | _9 (unreliable)_ | too few sound estimates | — |" in text
    assert "| inf | 8 ± 0.58 | _30 (unreliable)_ | 4 ± 0.58 | falls | 0.50 (100 → 10000) |" in text
    payload = json.loads(claims_json("x", [], {"llc_over_training": report}))
    assert payload["llc_over_training"]["runs"][1]["shape"] == "falls"
