"""A run folder's lock: one pipeline process at a time writes into a run.

Two pipelines on one run folder would execute the same notebooks into the same files (each
renaming the other's partial notebook away). :func:`run_lock` holds ``<run>/.state/pipeline.lock``
with ``flock`` (so the kernel drops it when its process ends, however it ends) and refuses a
second holder at once, naming the first one's PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from kdutils.study.runs import RunDir


class RunLocked(RuntimeError):
    """Another pipeline process holds the run folder's lock; the message names its PID."""


LOCK_FILE = "pipeline.lock"


@contextlib.contextmanager
def run_lock(run_root: Path) -> Iterator[Path]:
    """Hold ``<run_root>/.state/pipeline.lock`` exclusively while the block runs, or refuse at once.

    Two pipelines on one run folder would execute the same notebooks into the same files (each
    renaming the other's partial notebook away). The lock is ``flock`` on an open file, so the
    kernel drops it when its process ends however it ends: a killed run leaves no stale lock.
    The holder writes its PID into the file for the refusal to name. Yields the lock file; raises
    :class:`RunLocked` naming the holder's PID when another process holds it.
    """
    path = RunDir(run_root).state_dir / LOCK_FILE
    fh = path.open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"{run_root} is in use by another pipeline run (PID {_lock_holder(path)}, lock "
                            f"{path}); wait for it to finish, or give another --output-root") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield path
        finally:
            # Emptied before the unlock: a PID left in the file would name a process that has finished.
            fh.truncate(0)
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def _lock_holder(path: Path, wait: float = 1.0) -> str:
    """The PID written in a held lock file; the holder writes it just after locking, so wait briefly."""
    deadline = time.monotonic() + wait
    while True:
        pid = path.read_text().strip()
        if pid or time.monotonic() > deadline:
            return pid or "unknown"
        time.sleep(0.02)
