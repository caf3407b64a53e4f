"""The built wheel installs into a fresh virtual environment and its `spikec` command works from a
folder outside the repository, on the model and images inside the package (no download: the
fresh environment sees this environment's packages, and pip gets --no-deps --no-index)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sh(*args, cwd, env=None, timeout=600):
    res = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{args}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repo(tmp_path):
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
        ROOT, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("spikec-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for inside in ("spikec/pretrained/cifar10_vgg_small_qcfs.pt", "spikec/data/cifar10-test-1000.tar.gz",
                   "spikec/cli.py"):
        assert inside in names, inside
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta and "Description-Content-Type: text/markdown" in meta
    assert "## Command line" in meta            # the README is the long description
    assert any(n.endswith("licenses/LICENSE") for n in names)

    venv = tmp_path / "venv"
    _sh(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path)
    py = venv / "bin" / "python"
    purelib = _sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).stdout.strip()
    # this environment's packages (torch, ...) but not its editable spikec: a plain path line
    Path(purelib, "outer_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _sh(py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(COLUMNS="80", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    where = _sh(py, "-c", "import spikec; print(spikec.__file__)", cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    spikec = venv / "bin" / "spikec"
    assert "compile" in _sh(spikec, "--help", cwd=work, env=env).stdout
    _sh(spikec, "compile", "--pretrained", "cifar10_vgg_small_qcfs", "--input-range", "0,1", "-o", "g.h5",
        cwd=work, env=env)
    res = _sh(spikec, "run", "g.h5", "--data", "cifar10-subset", "--limit", "2", "--steps", "2", cwd=work, env=env)
    assert "accuracy" in res.stdout and (work / "g.h5").is_file()
