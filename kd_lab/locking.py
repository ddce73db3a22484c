"""Files written by several processes at once: a lock per target, temporary names per process.

Two lessons opened at once on a fresh clone both fetch the data set and both need the teacher. The first
process to take the lock of a target (:func:`file_lock`) does the work; the second waits for it, then finds
the work done and only loads. Whatever is written goes to a temporary file of its own process
(:func:`temporary_path`) and is renamed into place in one step, so a reader sees the old file or the new one,
never half of one.

The lock is ``fcntl.flock`` on a lock file next to the target (``.NAME.lock``): the kernel drops it when its
process ends, however it ends, so a killed process leaves no stale lock. The lock file itself stays (deleting
it could let two processes hold "the" lock on two different files). Where ``fcntl`` is missing (Windows)
nothing is locked; the temporary names still keep two writers apart.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:                      # Windows: no flock; atomic renames still keep the files whole
    fcntl = None

__all__ = ["file_lock", "lock_path", "temporary_path"]


def lock_path(target: Path | str) -> Path:
    """The lock file of ``target``: ``.NAME.lock`` in the same folder."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def temporary_path(target: Path | str) -> Path:
    """A temporary name for writing ``target`` in this process: ``.NAME.PID.tmp`` next to it (the same file
    system, so ``os.replace`` onto ``target`` is atomic)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def file_lock(target: Path | str, what: str = "", verbose: bool = True):
    """Hold the lock of ``target`` (its folder is created) for the ``with`` block; when another process holds
    it, say so on stderr (``what`` says what it is doing, e.g. "fetching fashion-mnist") and wait for it.
    An ``OSError`` (a folder that cannot be written) propagates to the caller."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if verbose:
                    print(f"[kd_lab] waiting for another process{' ' + what if what else ''} (lock {path})",
                          file=sys.stderr, flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
