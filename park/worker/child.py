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

POLL_FIRST = 0.0002  # seconds before the agent first looks for a batch's reports
POLL_MOST = 0.005  # and at most this long between looks
POLL_FOR = 0.02  # then it waits to be woken by the pipe: a long unit costs no wake-ups


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
        self._replies = -1  # the read end of the child's report pipe (non-blocking)
        self._partial = b""  # the start of a report line not yet complete

    async def start(self) -> Child:
        # The reports come through a pipe the agent polls while units are short rather
        # than one the event loop watches: a batch of short units then costs the agent a
        # read every few milliseconds, not a wake-up per unit.
        replies, into = os.pipe()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", START, str(os.getpid()),
                stdin=asyncio.subprocess.PIPE, stdout=into,
            )  # fmt: skip
        except BaseException:
            os.close(replies)
            raise
        finally:
            os.close(into)
        os.set_blocking(replies, False)
        self._replies = replies
        return self

    async def send(self, units: list[dict[str, Any]], patterns: tuple[str, ...]) -> None:
        """Hand the child a batch; its reports follow in order (`reports`)."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(json.dumps({"units": units, "allow": list(patterns)}).encode() + b"\n")
            await proc.stdin.drain()
        except (ConnectionError, BrokenPipeError) as err:
            raise ChildLost(str(err)) from err

    async def reports(self) -> list[tuple[float, dict[str, Any]]]:
        """The next reports, in order, each with when its unit finished (monotonic clock):
        all the child has written, once it has written at least one. Looked for every
        0.2 ms at first, then less often, at most every 5 ms, for 20 ms (short units: a
        read per many reports); after that the pipe wakes the agent (a long unit: the
        agent sleeps rather than taking a core's time slices from the children)."""
        delay, polled = POLL_FIRST, 0.0
        while True:
            lines = self._read()
            if lines:
                return [(float(at), report) for at, report in map(json.loads, lines)]
            if lines is None:  # every write end closed: the child is gone
                code = await self.proc.wait() if self.proc is not None else None
                raise ChildLost(f"the child process ended (exit code {code})")
            if polled < POLL_FOR:
                await asyncio.sleep(delay)
                polled += delay
                delay = min(2 * delay, POLL_MOST)
            else:
                await self._readable()

    async def _readable(self) -> None:
        """Until the report pipe has something to read (or its child has gone)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self._replies, wake)
        try:
            await ready
        finally:
            loop.remove_reader(self._replies)

    def _read(self) -> list[bytes] | None:
        """The complete lines in the pipe now; None once the child is gone."""
        chunks = [self._partial]
        while True:
            try:
                chunk = os.read(self._replies, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:  # the child is gone: its last reports first, then None
                if b"\n" in b"".join(chunks):
                    break
                return None
            chunks.append(chunk)
        *lines, self._partial = b"".join(chunks).split(b"\n")
        return lines

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
        if self._replies >= 0:
            os.close(self._replies)
            self._replies = -1


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
