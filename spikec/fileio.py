"""Atomic file writes: nothing half-written is ever left at the target path, nor forever beside it.

`atomic_path(path)` writes into a temporary `.<name>.<pid>-XXXXXXXX.tmp` next to `path` and renames
it into place when the block succeeds. A writer killed before the rename (SIGKILL, power loss) leaves
its temporary behind; the next `atomic_path` to the same target removes it once its owner (the pid in
the name) no longer runs. Temporaries named without a pid (`.<name>.XXXXXXXX.tmp`, spikec <= 0.x
saves) are removed when untouched for STALE_TEMP_SECONDS and not locked (HDF5 locks a file it writes).
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spikec.errors import FormatError

STALE_TEMP_SECONDS = 3600
_OWNED = re.compile(r"(\d+)-[a-z0-9_]{8}\.tmp")
_LEGACY = re.compile(r"[a-z0-9_]{8}\.tmp")


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; when the block succeeds it is renamed onto `path`
    (with the usual umask permissions), when it raises the temporary file is deleted."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FormatError(f"cannot write {path}: folder {path.parent} does not exist")
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(path) -> list[Path]:
    """Delete the temporaries of `path` that killed writers left behind (see the module docstring).
    Returns what was removed; never raises for a file it cannot inspect or remove."""
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    try:
        candidates = [c for c in path.parent.iterdir() if c.name.startswith(prefix)]
    except OSError:
        return removed
    for tmp in candidates:
        rest = tmp.name[len(prefix):]
        owned = _OWNED.fullmatch(rest)
        try:
            if owned:
                if _running(int(owned.group(1))) or not tmp.is_file():
                    continue
                os.unlink(tmp)
            elif _LEGACY.fullmatch(rest):
                if not tmp.is_file() or time.time() - tmp.stat().st_mtime < STALE_TEMP_SECONDS:
                    continue
                with open(tmp, "rb") as fh:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError if a live writer holds it
                    os.unlink(tmp)
            else:
                continue
            removed.append(tmp)
        except OSError:
            continue
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's live process
        return True
    return True
