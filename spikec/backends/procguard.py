"""Backend runs that leave nothing behind: child processes stopped, temporary folders removed.

Used by the Lava backend (which forks one OS process per Lava process, plus a shared-memory
manager) and by Brian2's cpp_standalone target (which runs compiled binaries):

- `sigterm_raises()`: inside the block SIGTERM raises `Terminated` (when SIGTERM still has its
  default action and this is the main thread), so the cleanup code of the run executes; on the
  way out the signal is delivered again with its default action, so the process still ends as
  killed by SIGTERM. SIGINT raises KeyboardInterrupt anyway.
- `reaped_children()`: on leaving the block, every process that became a descendant of this one
  inside it and is still running gets SIGKILL (Python's resource tracker excepted: it is shared
  by the whole program and unlinks leaked shared memory when the program ends). Processes another
  thread starts meanwhile count as the block's too: guard runs, not whole programs.
- `die_with_parent()`: processes forked inside the block ask the kernel (Linux prctl
  PR_SET_PDEATHSIG) to SIGKILL them when this process dies, so even a SIGKILL of the parent
  orphans no Lava worker.
- `owned_folder(prefix)`: a temporary folder `<prefix><pid>-XXXXXXXX` removed on leaving the block;
  entering removes the folders of that prefix whose owning process is gone (left by a SIGKILL).
- `multiprocessing_tempdir(folder)`: multiprocessing's own socket folder (`pymp-*`, made by the
  first process that needs one, e.g. Lava's shared-memory manager) goes into `folder` instead.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from spikec.fileio import pid_alive, process_stat


class Terminated(BaseException):
    """SIGTERM arrived during a guarded run (a BaseException: `except Exception` does not stop it)."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second SIGTERM must not cut the cleanup short
        raise Terminated(f"signal {signum} (SIGTERM) during the run")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise   # only reached if the signal is blocked: the exception ends the program instead
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --------------------------------------------------------------------------- processes


def descendants(pid: int) -> set[int]:
    """Running (not zombie) descendants of `pid`; empty where /proc is unavailable."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if entry.isdigit():
            info = process_stat(int(entry))
            if info is not None and info[1] != "Z":
                parents.setdefault(info[0], []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _is_resource_tracker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"resource_tracker" in fh.read()
    except OSError:
        return False


def kill_new_children(before: set[int]) -> list[int]:
    """SIGKILL every descendant not in `before` (the resource tracker excepted); returns them."""
    killed = []
    for pid in sorted(descendants(os.getpid()) - before):
        if _is_resource_tracker(pid):
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            continue
    _reap(killed)
    return killed


def _reap(pids: list[int]) -> None:
    """Collect the exit status of killed direct children, so no zombie is left behind."""
    import multiprocessing

    multiprocessing.active_children()   # reaps children started through multiprocessing
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except OSError:   # not our child, or already reaped
            continue


@contextmanager
def reaped_children() -> Iterator[Callable[[], list[int]]]:
    """Yields a function that kills the block's new children at once (e.g. before waiting for
    threads that wait for them); on leaving the block they are killed anyway."""
    before = descendants(os.getpid())
    try:
        yield lambda: kill_new_children(before)
    finally:
        kill_new_children(before)


_PDEATHSIG_PARENT: list[int] = []   # pid whose forks must die with it (empty: no guard active)


def _after_fork_in_child() -> None:
    if not _PDEATHSIG_PARENT:
        return
    parent = _PDEATHSIG_PARENT[0]
    _PDEATHSIG_PARENT.clear()
    if os.getppid() != parent:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:   # the parent died between fork and prctl
        os._exit(1)


if sys.platform.startswith("linux"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def die_with_parent() -> Iterator[None]:
    _PDEATHSIG_PARENT[:] = [os.getpid()]
    try:
        yield
    finally:
        _PDEATHSIG_PARENT.clear()


# --------------------------------------------------------------------------- folders




def remove_stale(prefix: str, root=None) -> list[Path]:
    """Remove `<root>/<prefix><pid>-*` folders whose process `pid` no longer runs; returns them."""
    root = Path(root if root is not None else tempfile.gettempdir())
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not pid_alive(int(match.group(1))) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


SOCKET_DIR_MAX = 107 - len("/listener-XXXXXXXX")   # AF_UNIX paths hold 107 bytes on Linux
SOCKET_PREFIX = "spikec-mp-"


@contextmanager
def multiprocessing_tempdir(folder: str) -> Iterator[None]:
    """Make multiprocessing put its sockets in `folder` (so they go with it), or, where the socket
    path would exceed the AF_UNIX limit (a long TMPDIR), in an owned folder under /tmp."""
    from multiprocessing import process

    config = process.current_process()._config
    if "tempdir" in config:   # this program made one already; it removes it at exit
        yield
        return
    with ExitStack() as stack:
        if len(os.fsencode(folder)) > SOCKET_DIR_MAX:
            short_root = "/tmp" if os.path.isdir("/tmp") else None
            folder = stack.enter_context(owned_folder(SOCKET_PREFIX, short_root))
        config["tempdir"] = folder
        try:
            yield
        finally:
            config.pop("tempdir", None)


@contextmanager
def owned_folder(prefix: str, root=None) -> Iterator[str]:
    remove_stale(prefix, root)
    folder = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
