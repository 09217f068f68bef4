"""Run-time plumbing: device claiming without a GPU, logging to the rule's log file."""

import logging
import sys

import pytest
import torch

from transient_ridge.runtime import claim_device, configure_logging


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_claim_device_falls_back_to_cpu(tmp_path):
    with claim_device(tmp_path) as device:
        assert device.type == "cpu"
    assert list(tmp_path.iterdir()) == []  # no lock files without GPUs


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
