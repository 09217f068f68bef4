"""LLC over training: the shape rule on known sequences, the report on a constructed llc.zarr."""

import json
import math

import numpy as np
import pytest
import xarray as xr

from llc_stores import llc_store, restatus
from transient_ridge.claims import json_safe, llc_over_training_markdown
from transient_ridge.llc import TOO_FEW, curve_shape, llc_over_training_report


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
    # two runs, three steps, s.e. 0.5 everywhere
    store = llc_store([[4.0, 6.0, 9.0], [8.0, 30.0, 4.0]], M=[1.0, math.inf], steps=[100, 1000, 10000], sem=0.5)
    store["failed_chains"][0, 2] = 1  # M=1, last step: one chain diverged -> unreliable
    store["trace_peak"][1, 1] = 20.0  # M=inf, middle step: spiked -> unreliable
    return restatus(store)


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
    # the s.e. is the store's own llc_sem, not recomputed
    for run in report["runs"]:
        assert run["llc_sem"] == [0.5, 0.5, 0.5]


def test_report_leaves_unrecorded_steps_empty_and_reaches_markdown_and_json():
    store = _llc_store()
    store["failed_chains"][0, 0] = -1  # M=1 has no estimate at step 100
    store["llc_mean"][0, 0] = np.nan
    report = llc_over_training_report(restatus(store))
    assert report["runs"][0]["llc_mean"][0] is None and report["runs"][0]["status"][0] is None
    assert report["runs"][0]["shape"] == TOO_FEW and math.isnan(report["runs"][0]["last_over_first"])
    text = "\n".join(llc_over_training_markdown(report))
    assert "| M | step 100 | step 1000 | step 10000 | shape | last / first sound |" in text
    assert "| 1 | — | 6 ± 0.5 | _9 (unreliable)_ | too few sound estimates | — |" in text
    assert "| inf | 8 ± 0.5 | _30 (unreliable)_ | 4 ± 0.5 | falls | 0.50 (100 → 10000) |" in text
    payload = json.loads(json.dumps(json_safe({"llc_over_training": report})))
    assert payload["llc_over_training"]["runs"][1]["shape"] == "falls"
    assert payload["llc_over_training"]["runs"][0]["last_over_first"] == "nan"  # NaN written as a JSON string
