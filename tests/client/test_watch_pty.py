"""`park jobs --watch` in a real terminal (a pty): a submitted job shows up live, leaves
the table when it is cancelled, and Ctrl-C ends the watch quietly."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import httpx

from tests.support import ParkServer


def read_until(fd: int, text: bytes, seen: bytearray, timeout: float, start: int = 0) -> None:
    """Read the terminal into `seen` until `text` appears after `start`."""
    deadline = time.monotonic() + timeout
    while text not in seen[start:]:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not shown within {timeout} s; screen: {bytes(seen)[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                seen.extend(os.read(fd, 65536))
            except OSError:  # the child closed the terminal
                break


def test_jobs_watch_in_a_terminal(park_server: ParkServer) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "park", "jobs", "--watch", "--server", park_server.url],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    try:
        read_until(master, b"live: 0 active", seen, timeout=60)
        spec = {"function": "park.builtins:sleep", "inputs": [30]}
        job = httpx.post(f"{park_server.url}/v1/jobs", json={"kind": "map", "spec": spec}).json()
        read_until(master, job["id"].encode(), seen, timeout=30)
        read_until(master, b"live: 1 active", seen, timeout=30)
        shown = len(seen)
        httpx.post(f"{park_server.url}/v1/jobs/{job['id']}/cancel")
        read_until(master, b"live: 0 active", seen, timeout=30, start=shown)
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=20) == 0
        with contextlib.suppress(OSError):
            while select.select([master], [], [], 0.2)[0]:
                seen.extend(os.read(master, 65536))
        assert b"Traceback" not in seen and b"KeyboardInterrupt" not in seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
