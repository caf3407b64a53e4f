"""The examples and the demo run end to end in their small (--quick) configuration."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(args, tmp_path):
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


@pytest.mark.slow
def test_export_example(tmp_path):
    out = run_script([ROOT / "examples/export_to_loihi.py", "--quick", "--out", tmp_path], tmp_path)
    scripts = sorted(p.name for p in tmp_path.glob("*_lava.py"))   # the stock LIF and the sigma-delta graph
    assert len(scripts) == 2 and any(name.endswith("_sdnn_lava.py") for name in scripts)
    assert "stock SigmaDelta (loihi-sdnn) at T=1" in out
    nets = list(tmp_path.glob("*.net"))
    if nets:      # netx could express the graph exactly: checked against PyTorch through Intel's loader
        assert "netx == PyTorch" in out and nets[0].stat().st_size > 0
    else:         # refused with the reason, nothing half-written; the Lava backend is checked instead
        assert "netx export refused" in out and "Lava == PyTorch" in out


@pytest.mark.slow
def test_verify_example(tmp_path):
    run_script([ROOT / "examples/verify_networks.py", "--quick", "--out", tmp_path], tmp_path)
    for name in ("resnet", "densenet"):
        report = json.loads((tmp_path / f"{name}_verify.json").read_text())
        assert report["equal"] is True and len(report["rows"]) > 0


@pytest.mark.slow
def test_estimate_example(tmp_path):
    run_script([ROOT / "examples/estimate_energy.py", "--quick", "--out", tmp_path], tmp_path)
    est = json.loads((tmp_path / "estimate.json").read_text())
    assert est["sops"] > 0


@pytest.mark.slow
def test_demo_quick(tmp_path):
    out = run_script(["-m", "spikec.demo", "--quick", "--out", tmp_path / "report"], tmp_path)
    report_dir = tmp_path / "report"
    assert "report written to" in out
    md = (report_dir / "report.md").read_text()
    for heading in ("# spikec demo report", "## Equivalence", "## Operations and energy", "| T | hardware steps |"):
        assert heading in md
    summary = json.loads((report_dir / "report.json").read_text())
    assert summary["equal"] is True and set(summary["backends"]) >= {"torch"}
    ev = summary["evaluation"]
    assert ev["total"] == 200 and set(ev["accuracy"]) == {str(t) for t in range(1, 33)}
    assert ev["ann_accuracy"] > 80          # the shipped CIFAR-10 ResNet-20 on real images
    assert ev["accuracy"]["32"] > 70
    for png in ("accuracy_vs_steps.png", "equivalence.png"):
        assert (report_dir / png).stat().st_size > 1000
    assert (report_dir / "graph.h5").is_file()
