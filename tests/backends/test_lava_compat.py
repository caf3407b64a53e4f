"""The in-memory Python 3.11 shim for lava-nc (spikec.backends.lava.compat)."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import py_compile
import subprocess
import sys
import textwrap

import pytest

from spikec.backends.lava import backend as lava_backend
from spikec.backends.lava import compat as lava_compat

BROKEN = textwrap.dedent("""\
    from __future__ import annotations

    from dataclasses import dataclass


    @dataclass
    class ByteEncoder:
        base: int = 0


    @dataclass
    class CoreEncoder:
        x: ByteEncoder = ByteEncoder()
        y: ByteEncoder   =   ByteEncoder()
    """)


def test_patch_source_rewrites_only_the_defaults():
    patched = lava_compat.patch_source(BROKEN)
    assert "= ByteEncoder()" not in patched and patched.count("default_factory=ByteEncoder") == 2
    assert patched.startswith("from __future__ import annotations\nimport dataclasses as _spikec_dataclasses")
    namespace: dict = {}
    exec(compile(patched, "<patched>", "exec"), namespace)
    a, b = namespace["CoreEncoder"](), namespace["CoreEncoder"]()
    assert a.x == namespace["ByteEncoder"]() and a.x is not b.x
    assert lava_compat.patch_source("x = 1\n") == "x = 1\n"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the shim only acts on Python 3.11+")
def test_stale_bytecode_of_the_unpatched_file_cannot_bypass_the_shim(tmp_path):
    """A .pyc compiled from the broken source (unchecked hash: Python would trust it blindly) is
    ignored; the module is compiled from the patched text and nothing on disk changes."""
    pkg = tmp_path / "lava" / "magma" / "compiler"
    pkg.mkdir(parents=True)
    for folder in (tmp_path / "lava", tmp_path / "lava" / "magma", pkg):
        (folder / "__init__.py").write_text("")
    source = pkg / "var_model.py"
    source.write_text(BROKEN)
    cached = py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    model_files = lambda: {p: p.read_bytes() for p in pkg.rglob("var_model*")}  # noqa: E731
    before = model_files()
    script = textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from spikec.backends.lava import compat as lava_compat
        lava_compat.install()
        import lava.magma.compiler.var_model as m
        print(m.CoreEncoder(), m.__file__)
        """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run = lambda code: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: E731
                                      env=env, timeout=120)
    done = run(script)
    assert done.returncode == 0, done.stderr
    assert "CoreEncoder(x=ByteEncoder(base=0)" in done.stdout and str(source) in done.stdout
    assert model_files() == before and os.path.exists(cached)   # nothing rewritten, no new .pyc
    # without the shim the same import fails (the test would prove nothing otherwise)
    plain = script.replace("lava_compat.install()", "pass")
    failed = run(plain)
    assert failed.returncode != 0 and "default_factory" in failed.stderr


def test_install_refuses_a_non_fork_start_method():
    script = textwrap.dedent("""\
        import multiprocessing
        multiprocessing.set_start_method("spawn")
        from spikec.backends.lava import compat as lava_compat
        from spikec.errors import BackendError
        try:
            lava_compat.install()
        except BackendError as err:
            print("refused:", err)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "fork" in done.stdout


@pytest.mark.skipif(not lava_backend.is_available(), reason="lava unavailable")
@pytest.mark.skipif(sys.platform == "win32", reason="Lava only sets a start method on POSIX")
def test_lava_imports_after_something_fixed_the_fork_context():
    """get_start_method() (torch's DataLoader calls it) fixes the context; Lava's own
    set_start_method('fork') would then raise. The shim clears an already-'fork' context first."""
    script = textwrap.dedent(f"""\
        import multiprocessing
        assert multiprocessing.get_start_method() == "fork"
        from spikec.backends.lava import compat as lava_compat
        USE
        import {lava_compat.MP_TARGET}
        print("imported", multiprocessing.get_start_method())
        """)
    run = lambda code: subprocess.run([sys.executable, "-c", code], capture_output=True,  # noqa: E731
                                      text=True, timeout=120)
    done = run(script.replace("USE", "lava_compat.install()"))
    assert done.returncode == 0 and "imported fork" in done.stdout, done.stderr
    failed = run(script.replace("USE", "pass"))
    assert failed.returncode != 0 and "context has already been set" in failed.stderr


@pytest.mark.skipif(not lava_backend.is_available(), reason="lava unavailable")
def test_spawned_processes_do_not_inherit_the_shim_and_cannot_run_lava():
    """Lava's workers are forked and inherit the finder. A *spawned* interpreter does not inherit
    it (a bare import of the module fails there), and Lava itself cannot be imported in a spawned
    interpreter at all (it calls set_start_method('fork') without force): spikec reports that."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        assert "fork" in pool.apply(lava_backend.why_unavailable)
    if sys.version_info >= (3, 11):
        with ctx.Pool(1) as pool, pytest.raises(ValueError, match="default_factory"):
            pool.apply(importlib.import_module, (lava_compat.TARGET,))


SPY = textwrap.dedent("""\
    import sys
    from spikec.backends.lava import compat as lava_compat
    early = []   # lava modules looked up while the shim was not installed

    class Spy:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "lava" and not lava_compat.installed():
                early.append(name)
            return None

    sys.meta_path.insert(0, Spy())
    IMPORTS
    print("early:", early, "lava modules:", sum(m.split(".")[0] == "lava" for m in sys.modules))
    """)


@pytest.mark.slow
@pytest.mark.skipif(not lava_backend.is_available(), reason="lava unavailable")
@pytest.mark.skipif(not lava_compat.needed(), reason="the shim only acts on Python 3.11+")
def test_lava_modules_are_imported_only_after_the_shim():
    """In a fresh interpreter, every lava module spikec's Lava code imports (backend, processes,
    export) is looked up only once the shim is in sys.meta_path; the spy does see an import of
    lava made without it (the control)."""
    run = lambda imports: subprocess.run(  # noqa: E731
        [sys.executable, "-c", SPY.replace("IMPORTS", imports)], capture_output=True, text=True, timeout=300)
    done = run("import spikec.backends.lava.backend as b; assert b.is_available(); "
               "import spikec.backends.lava.procs, spikec.backends.lava.export")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("early: []") and "lava modules: 0" not in done.stdout, done.stdout
    control = run("import importlib\ntry:\n    importlib.import_module('lava.magma.core.run_configs')\n"
                  "except Exception:\n    pass")
    assert "early: ['lava'" in control.stdout, control.stdout + control.stderr
