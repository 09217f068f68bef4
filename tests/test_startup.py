"""Jobs that never train or sample do not import torch (it costs about 2 s of every job's start-up).

Each rule script's module-level imports run in a fresh interpreter, which then
reports whether ``torch`` got loaded. The LLC scripts need torch and are the
control: the check must see it there. The train script imports torch only where it
trains: a group member's job whose run its group's leader trained only publishes it.
"""

import ast
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = REPO / "workflow" / "scripts"
WITHOUT_TORCH = [
    "tasks", "baselines", "evaluate", "pca", "plot_figure", "claims", "llc_gather", "llc_calibration", "archive", "train",
]
WITH_TORCH = ["llc_run", "llc_calibration_point"]


def loads_torch(script: str) -> bool:
    tree = ast.parse((SCRIPTS / f"{script}.py").read_text())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    code = ast.unparse(ast.Module(body=imports, type_ignores=[])) + "\nimport sys\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("script", WITHOUT_TORCH)
def test_scripts_that_do_not_need_torch_do_not_load_it(script):
    assert not loads_torch(script), f"workflow/scripts/{script}.py imports torch (directly or through the package)"


@pytest.mark.parametrize("script", WITH_TORCH)
def test_the_check_sees_torch_where_it_is_used(script):
    assert loads_torch(script)


def test_the_workflow_itself_loads_without_torch():
    """The Snakefile's helpers (common.smk) parse every run of Snakemake: they stay torch-free too."""
    code = (
        "import sys\n"
        "from transient_ridge.config import LLC_RUN_SECTIONS, TRAINING_SECTIONS, ExperimentConfig\n"
        "from transient_ridge.figures import FIGURE_NAMES\n"
        "from transient_ridge.llc import calibration_steps\n"
        "from transient_ridge.provenance import read_provenance\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "False"
