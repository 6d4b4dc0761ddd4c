"""One data directory, one server: a lock file that `park serve` and the local service
both take, naming the process that holds it.

Two servers appending to one SQLite log would each fold only their own events and fork
the history (jobs accepted by one unknown to the other). The lock is an advisory `flock`
the kernel drops when its holder dies, so a `kill -9` never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import IO

LOCK_FILE = "local.lock"


def hold(data_dir: Path, holder: str) -> IO[str] | None:
    """Take the data directory's lock and record `holder` (who this process is) in it;
    the lock is held while the returned file stays open. None if another process has it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(holder)
    lock.flush()
    return lock


def holder(data_dir: Path) -> str:
    """Who holds the data directory's lock, as it recorded itself."""
    with contextlib.suppress(OSError):
        said = (data_dir / LOCK_FILE).read_text().strip()
        if said:
            return said
    return "another process"
