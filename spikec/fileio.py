"""Atomic file writes: nothing half-written is ever left at the target path, nor forever beside it.

`atomic_path(path)` writes into a temporary `.<name>.<pid>-XXXXXXXX.tmp` next to `path` and renames
it into place when the block succeeds. A writer killed before the rename (SIGKILL, power loss) leaves
its temporary behind; the next `atomic_path` to the same target removes it once its owner (the pid in
the name) no longer runs. Temporaries named without a pid (`.<name>.XXXXXXXX.tmp`, spikec <= 0.x
saves) are removed when untouched for STALE_TEMP_SECONDS and not locked (HDF5 locks a file it writes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
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
    with _temporary(path) as tmp:
        yield tmp
        os.replace(tmp, path)


@contextmanager
def _temporary(path: Path) -> Iterator[Path]:
    """A new empty file `.<name>.<pid>-XXXXXXXX.tmp` next to `path`, deleted on leaving the block
    unless it was renamed away; stale temporaries of `path` are removed first."""
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
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_files(*paths) -> Iterator[list[Path]]:
    """Temporaries for files that belong together (a module and its parameters). When the block
    succeeds they are renamed into place one after another; if a rename fails (or is interrupted
    by an exception) the targets already replaced get their previous content back. A SIGKILL
    between two renames can still leave new and old files side by side, so a reader of such a
    pair must check that they match (the Lava export embeds its parameters' SHA-256)."""
    paths = [Path(p) for p in paths]
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(_temporary(p)) for p in paths]
        yield temps
        backups = []
        try:
            for tmp, path in zip(temps, paths):
                backups.append(_backup(path))
                os.replace(tmp, path)
        except BaseException:
            for path, backup in zip(paths, backups):
                if backup is not None:
                    os.replace(backup, path)
                elif path.exists():
                    path.unlink()
            raise
        finally:
            for backup in backups:
                if backup is not None and backup.exists():
                    backup.unlink()


def _backup(path: Path) -> Path | None:
    """A hard link to the current `path` under a temporary name (None if there is no such file)."""
    if not path.exists():
        return None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        os.link(path, tmp)
    except OSError:   # a file system without hard links
        shutil.copy2(path, tmp)
    return Path(tmp)


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
                if pid_alive(int(owned.group(1))) or not tmp.is_file():
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


def process_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a live process, None if gone (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[1]), fields[0]


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's live process
        return True
    info = process_stat(pid)
    return info is None or info[1] != "Z"


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where the system does not say)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
