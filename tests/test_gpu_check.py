"""benchmarks/gpu_check.py: --smoke writes a report with every section measured or skipped with a reason,
and a part that hangs is cut off at its limit without losing what it measured."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402

SECTIONS = ("environment", "steps", "profile", "llc", "sharing", "slice", "compile")


def test_smoke_report_has_every_section(tmp_path):
    out = tmp_path / "gpu_check.md"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    sections = json.loads(out.with_suffix(".json").read_text())["sections"]
    assert tuple(sections) == SECTIONS
    for name, section in sections.items():
        assert f"## {name}:" in report
        if section["status"] == "skipped":
            assert section["reason"], name
            continue
        assert section["status"] == "ok", (name, section)
    rates = {r["name"]: r["value"] for s in sections.values() for r in s["rows"] if r["kind"] == "rate"}
    for name in ("eager fp32", "eager TF32", "eager bf16 autocast", "ours, SGLD batch 16"):
        assert rates[name] > 0, name
    assert any(name.startswith("vmapped ensemble") for name in rates)
    assert sum(name.startswith("process ") for name in rates) == 2  # the sharing processes
    skips = {r["name"]: r["reason"] for s in sections.values() for r in s["rows"] if r["kind"] == "skip"}
    assert "CUDA" in skips["CUDA graph of the whole step"]
    profiles = {r["name"]: r for r in sections["profile"]["rows"] if r["kind"] == "profile"}
    assert set(profiles) == {"fp32", "bf16"}
    assert all(p["rows"] and p["busy_ms"] > 0 for p in profiles.values())
    assert "aten::mm" in report or "aten::addmm" in report  # the matmuls show up in the profile table
    assert "jobs planned" in report  # the slice's dry run
    assert "timed out" not in report


def test_a_hanging_part_is_cut_off_and_keeps_its_rows(tmp_path, monkeypatch):
    def hang(smoke, emit):
        emit(kind="rate", name="before the hang", value=1.0)
        time.sleep(60)

    monkeypatch.setitem(gpu_check.PART_FUNCTIONS, "hang", hang)
    runner = gpu_check.Runner(smoke=True, budget_s=30, workdir=tmp_path)
    started = time.monotonic()
    section = runner.run("hang", limit=1.0)
    assert time.monotonic() - started < 20
    assert section["status"] == "timed out"
    assert [r["name"] for r in section["rows"]] == ["before the hang"]
    report = gpu_check.render({"hang": section}, {"command": "x", "when": "now", "commit": "c", "seconds": 1,
                                                  "budget_s": 30, "smoke": True})
    assert "timed out after 1 s" in report


@pytest.mark.slow
def test_gpu_run_script_smoke(tmp_path):
    """benchmarks/gpu_run.sh end to end at the tiny size (about a minute on 2 cores)."""
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run([str(REPO / "benchmarks" / "gpu_run.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "gpu_run.log").read_text()
    assert "gpu_check exit 0" in log and "precision_curves exit 0" in log
    assert (tmp_path / "gpu_check.md").exists() and (tmp_path / "precision_curves.png").stat().st_size > 10_000
