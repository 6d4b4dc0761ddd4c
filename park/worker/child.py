"""A worker's child process: runs the batches its agent sends, and dies with it.

The agent sends a lease's whole batch as one JSON line; the child runs its units in order
and writes one line per unit into the pipe as it finishes, `[finished_at, report]`
(`finished_at` on the monotonic clock the agent shares). No unit waits for the agent, so a
batch of short units costs a write each rather than a round trip each, and the agent reads
many reports at a time. From the last `finished_at` the agent knows which unit runs and
since when, so it can still stop any unit at any moment by killing the child (a unit
cancelled, revoked or out of time) and start a fresh one for the rest of the batch.

A child never outlives its agent: the kernel kills it when the agent dies (Linux
`PR_SET_PDEATHSIG`), and a watchdog thread exits when the agent is gone (elsewhere, or if
the signal was missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from park.worker.runner import AllowList, run_unit

# A batch and each result travel as one line (a fit's data can be large).
MAX_LINE = 256 * 1024 * 1024


# The child's first lines, before anything else is imported (importing park and numpy takes
# seconds on a busy machine): it dies with the agent even while it is still starting.
START = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
from park.worker.child import main
main()
"""


class ChildLost(Exception):
    """The child died (killed on purpose, or crashed) before it answered."""


class Child:
    """The agent's handle on one child process."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.killed = False  # killed on purpose (a unit stopped), not crashed

    async def start(self) -> Child:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", START, str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=MAX_LINE,
        )  # fmt: skip
        return self

    async def send(self, units: list[dict[str, Any]], patterns: tuple[str, ...]) -> None:
        """Hand the child a batch; its reports follow in order (`next_report`)."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(json.dumps({"units": units, "allow": list(patterns)}).encode() + b"\n")
            await proc.stdin.drain()
        except (ConnectionError, BrokenPipeError) as err:
            raise ChildLost(str(err)) from err

    async def next_report(self) -> tuple[float, dict[str, Any]]:
        """The next unit's report and when it finished (monotonic clock)."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        try:
            line = await proc.stdout.readline()
        except ConnectionError as err:
            raise ChildLost(str(err)) from err
        if not line:
            code = await proc.wait()
            raise ChildLost(f"the child process ended (exit code {code})")
        finished_at, report = json.loads(line)
        return float(finished_at), report

    async def run(self, unit: dict[str, Any], patterns: tuple[str, ...]) -> dict[str, Any]:
        """One unit alone (a batch of one)."""
        await self.send([unit], patterns)
        return (await self.next_report())[1]

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def close(self) -> None:
        self.kill()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                await self.proc.wait()


def _die_with(parent: int) -> None:
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="park-child-watchdog").start()


def main() -> None:
    _die_with(int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the agent, which stops us
    replies = os.dup(1)
    os.dup2(2, 1)  # what units print goes to the worker's stderr, not into the replies
    for line in sys.stdin.buffer:
        request = json.loads(line)
        allow = AllowList(tuple(request["allow"]))
        for unit in request["units"]:
            r = run_unit(unit, allow)
            report = {
                "unit_id": r.unit_id, "ok": r.ok, "result": r.result, "error": r.error,
                "cpu_seconds": r.cpu_seconds, "wall_seconds": r.wall_seconds,
            }  # fmt: skip
            _write_all(replies, json.dumps([time.monotonic(), report]).encode() + b"\n")


def _write_all(fd: int, data: bytes) -> None:
    """Straight into the pipe, before the next unit begins: a unit that crashes or hangs
    the child then never takes a finished unit's report with it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    main()
