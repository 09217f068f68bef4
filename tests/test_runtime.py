"""Run-time plumbing: device claiming without a GPU, logging to the rule's log file."""

import logging
import sys

import pytest
import torch

from transient_ridge.runtime import claim_device, configure_logging


def test_claim_device_falls_back_to_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same check on a machine with GPUs
    with claim_device(tmp_path) as device:
        assert device.type == "cpu"
    assert list(tmp_path.iterdir()) == []  # no lock files without GPUs


def test_claim_device_gives_jobs_held_at_once_different_gpus(tmp_path, monkeypatch):
    """Two visible GPUs (faked): two jobs at once get GPUs 0 and 1; once both end, GPU 0 is free again."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"fake GPU {index}")
    selected = []
    monkeypatch.setattr(torch.cuda, "set_device", selected.append)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with claim_device(tmp_path) as first, claim_device(tmp_path) as second:
        assert (first, second) == (torch.device("cuda", 0), torch.device("cuda", 1))
    with claim_device(tmp_path) as again:
        assert again == torch.device("cuda", 0)
    assert selected == [0, 1, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "transient-ridge-gpu-all-0.lock", "transient-ridge-gpu-all-1.lock"
    ]


def test_configure_logging_writes_the_log_file(tmp_path):
    path = tmp_path / "logs" / "job.log"
    configure_logging(path)
    logging.getLogger("transient_ridge.test").info("progress line")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "progress line" in path.read_text()
    # leave the process as pytest expects it
    logging.basicConfig(force=True)
    logging.captureWarnings(False)
    sys.excepthook = sys.__excepthook__


def test_the_package_is_byte_compiled_once_for_every_job_even_where_imports_write_no_bytecode(tmp_path):
    """With PYTHONDONTWRITEBYTECODE an import writes no .pyc, so every job would compile the package again."""
    import importlib.util
    import os
    import subprocess
    import sys

    from transient_ridge.runtime import byte_compile_package

    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for module in ("__init__.py", "a.py", "sub/__init__.py", "sub/b.py"):
        (package / module).write_text("VALUE = 1\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)}
    subprocess.run([sys.executable, "-c", "import pkg.a, pkg.sub.b"], env=env, check=True)
    assert not list(package.rglob("*.pyc"))  # the import alone wrote nothing
    assert byte_compile_package(package)
    cached = {p.relative_to(package).as_posix() for p in package.rglob("*.pyc")}
    tag = sys.implementation.cache_tag
    assert cached == {f"__pycache__/__init__.{tag}.pyc", f"__pycache__/a.{tag}.pyc",
                      f"sub/__pycache__/__init__.{tag}.pyc", f"sub/__pycache__/b.{tag}.pyc"}
    assert importlib.util.cache_from_source(str(package / "a.py")) in {str(p) for p in package.rglob("*.pyc")}
    (package / "c.py").write_text("VALUE = (\n")  # a module that does not compile: reported, not raised
    assert not byte_compile_package(package)
