"""Provenance stamps: written into figures (PNG, PDF) and stores, read back unchanged."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
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
    assert set(git_state(str(copy))) == {"unknown"}


def test_the_commit_is_the_checkouts_head_inside_one():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    state = git_state(str(REPO / "transient_ridge"))
    assert len(state.commit) == 40 and isinstance(state.dirty, bool)
    assert state.dirty == (state.diff_sha256 is not None or bool(state.untracked))


def _git(*args, cwd):
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, check=True).stdout


_DRAW = """
import sys
from matplotlib.figure import Figure
import transient_ridge
from transient_ridge.figures import save_figure
assert transient_ridge.__file__.startswith(sys.argv[1]), transient_ridge.__file__
fig = Figure()
fig.subplots().plot([0, 1], [1, 0])
save_figure(fig, sys.argv[2] + ".pdf", sys.argv[2] + ".png", dpi=20)
"""


@pytest.fixture
def checkout(tmp_path):
    """A fresh git checkout holding a copy of the package, everything committed."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "transient_ridge", root / "transient_ridge", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".gitignore").write_text("results/\n")
    _git("init", "-q", cwd=root)
    _git("add", ".", cwd=root)
    _git("commit", "-q", "-m", "all", cwd=root)
    return root


def test_a_clean_checkout_is_clean_and_ignored_files_do_not_count(checkout):
    (checkout / "results").mkdir()
    (checkout / "results" / "out.txt").write_text("ignored")
    state = git_state(str(checkout / "transient_ridge"))
    assert state.commit == _git("rev-parse", "HEAD", cwd=checkout).decode().strip()
    assert (state.dirty, state.diff_sha256, state.untracked) == (False, None, ())


def test_a_figure_drawn_with_an_untracked_file_and_an_edit_says_dirty_with_both(checkout, tmp_path):
    # the stamp of a real figure, drawn by a process that imports the package from the checkout
    (checkout / "transient_ridge" / "new_module.py").write_text("VALUE = 1\n")
    with open(checkout / "transient_ridge" / "__init__.py", "a") as handle:
        handle.write("# an uncommitted edit\n")
    figure = tmp_path / "fig"
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    subprocess.run([sys.executable, "-c", _DRAW, str(checkout), str(figure)], env=env, check=True, cwd=tmp_path)
    stamp = read_provenance(figure.with_suffix(".png"))
    assert stamp == read_provenance(figure.with_suffix(".pdf"))
    assert stamp["git_commit"] == _git("rev-parse", "HEAD", cwd=checkout).decode().strip()
    assert stamp["git_dirty"] is True
    assert stamp["git_untracked"] == ["transient_ridge/new_module.py"]
    diff = _git("diff", "HEAD", "--binary", cwd=checkout)
    assert b"an uncommitted edit" in diff and stamp["git_diff_sha256"] == hashlib.sha256(diff).hexdigest()


def test_an_untracked_file_alone_makes_the_checkout_dirty(checkout):
    (checkout / "notes.py").write_text("x = 1\n")
    state = git_state(str(checkout / "transient_ridge"))
    assert (state.dirty, state.diff_sha256, state.untracked) == (True, None, ("notes.py",))


def test_a_long_untracked_list_is_cut_and_counted(checkout):
    for index in range(provenance.MAX_UNTRACKED + 3):
        (checkout / f"new_{index:03d}.txt").write_text("x")
    untracked = git_state(str(checkout / "transient_ridge")).untracked
    assert len(untracked) == provenance.MAX_UNTRACKED + 1 and untracked[-1] == "... and 3 more"


def test_provenance_does_not_import_the_rest_of_the_package():
    # store -> provenance, never back (the import circle is gone)
    code = "import sys, transient_ridge.provenance; print(sorted(m for m in sys.modules if m.startswith('transient_ridge')))"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(modules.replace("'", '"')) == ["transient_ridge", "transient_ridge.provenance"]


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
