"""Provenance stamps: written into figures (PNG, PDF) and stores, read back unchanged."""

import hashlib
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.image import imsave

from conftest import REPO
from transient_ridge import provenance
from transient_ridge.figures import save_figure
from transient_ridge.provenance import ProvenanceError, current_stamp, git_state, read_provenance
from transient_ridge.store import open_dataset, provenance_attrs, write_dataset


class _Params(dict):
    """Snakemake's params: attribute access and ``get``."""

    __getattr__ = dict.get


@pytest.fixture
def job():
    settings = {"figures": {"smoothing_window": 5}, "seeds.sgld": 4}
    smk = SimpleNamespace(rule="claims", wildcards=_Params(exp="mini"), params=_Params(settings=settings))
    provenance.start_job(smk)
    yield settings
    provenance._job.clear()


def test_a_figure_carries_the_same_stamp_in_its_png_and_its_pdf(tmp_path, job):
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1], [1, 0])
    # parentheses, backslashes and non-ASCII must survive the PDF string escaping
    stamp = {**current_stamp(), "note": "a (nested (paren)) \\ back\\slash, ∞ and é"}
    save_figure(fig, tmp_path / "f.pdf", tmp_path / "f.png", dpi=50, provenance=stamp)
    assert read_provenance(tmp_path / "f.pdf") == stamp
    assert read_provenance(tmp_path / "f.png") == stamp


def test_the_stamp_names_the_job_and_hashes_its_stage_settings(job):
    stamp = current_stamp()
    assert stamp["rule"] == "claims" and stamp["wildcards"] == {"exp": "mini"}
    assert stamp["stage_settings_keys"] == ["figures", "seeds.sgld"]
    expected = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()
    assert stamp["stage_settings_sha256"] == expected
    assert set(stamp["versions"]) == {"python", "transient_ridge", "torch", "numpy", "xarray", "zarr", "snakemake"}
    assert stamp["created_utc"].endswith("Z")


def test_write_dataset_replaces_a_stamp_copied_from_an_input_store(tmp_path, job):
    old = {**current_stamp(), "rule": "train"}
    dataset = xr.Dataset({"loss": ("step", np.arange(3.0))}, attrs={"provenance": old, "experiment": "mini"})
    write_dataset(dataset, tmp_path / "s.zarr")
    assert open_dataset(tmp_path / "s.zarr").attrs["provenance"]["rule"] == "claims"
    assert read_provenance(tmp_path / "s.zarr")["experiment"] == "mini"


def test_provenance_attrs_keeps_its_two_argument_form():
    attrs = provenance_attrs("mini", '{"name": "mini"}')
    assert attrs["experiment"] == "mini" and attrs["config"] == '{"name": "mini"}'
    assert "code_version" in attrs and attrs["provenance"]["rule"] == provenance.OUTSIDE_SNAKEMAKE


def test_the_commit_is_unknown_outside_a_git_checkout(tmp_path):
    copy = tmp_path / "transient_ridge"
    shutil.copytree(REPO / "transient_ridge", copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert git_state(str(copy)) == ("unknown", "unknown")


def test_the_commit_is_the_checkouts_head_inside_one():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    commit, dirty = git_state(str(REPO / "transient_ridge"))
    assert len(commit) == 40 and isinstance(dirty, bool)


def test_other_files_get_a_clear_error(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ProvenanceError, match="not a figure"):
        read_provenance(text)
    unstamped = tmp_path / "plain.png"
    imsave(unstamped, np.zeros((2, 2)))
    with pytest.raises(ProvenanceError, match="no 'transient_ridge:provenance'"):
        read_provenance(unstamped)
    assert provenance.main([str(text)]) == 1
    assert "error:" in capsys.readouterr().err
