"""Every code block of README.md runs verbatim, so the README cannot drift from the code:

* each Python block in a fresh namespace (it must define every name it uses);
* each shell block line by line through bash with the installed `spikec` command first on PATH,
  in an empty folder outside the repository; a `make <target>` line (the setup commands) is checked
  to name a Makefile target rather than run (it would rerun the whole suite).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHELLS = ("sh", "bash", "shell", "console")


def blocks(language: str | tuple[str, ...]) -> list[str]:
    found = re.findall(r"^```([a-z]*)\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    langs = (language,) if isinstance(language, str) else language
    return [body for lang, body in found if lang in langs]


def test_every_block_has_a_language():
    """An untagged block would be run by neither test below."""
    found = re.findall(r"^```([a-z]*)\n.*?^```", README.read_text(), flags=re.S | re.M)
    assert found and all(lang in ("python",) + SHELLS for lang in found), found


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(blocks("python")[index], f"README.md python block {index + 1}", "exec"), namespace)  # noqa: S102
    if "report" in namespace:
        assert namespace["report"].equal
        assert (tmp_path / "net.h5").is_file()


def _commands() -> list[str]:
    lines = [line for body in blocks(SHELLS) for line in body.splitlines()]
    return [line.split("  #")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


def test_make_lines_name_makefile_targets():
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    made = [shlex.split(c)[1] for c in _commands() if c.startswith("make ")]
    assert made and set(made) <= targets, (made, targets)


@pytest.mark.slow
def test_shell_blocks_run_with_the_installed_command(tmp_path):
    spikec = Path(sys.executable).parent / "spikec"
    assert spikec.is_file(), "the spikec command is not installed in this environment (pip install -e .)"
    env = dict(os.environ, PATH=f"{spikec.parent}{os.pathsep}{os.environ.get('PATH', '')}", COLUMNS="80")
    env.pop("PYTHONPATH", None)
    commands = [c for c in _commands() if not c.startswith("make ")]
    assert any(c.startswith("spikec ") for c in commands)
    for command in commands:
        res = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, f"README line failed: {command}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        assert "Traceback" not in res.stderr, command
