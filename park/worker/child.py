"""A worker's child process: runs the units its agent sends, one at a time, and dies with it.

The agent talks to it over a pipe, one JSON line per unit and one per report, so it can
stop any unit at any moment by killing the child (a unit cancelled, revoked or out of
time) and start a fresh one. A child never outlives its agent: the kernel kills it when
the agent dies (Linux `PR_SET_PDEATHSIG`), and a watchdog thread exits when the agent
is gone (elsewhere, or if the signal was missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from park.worker.runner import AllowList, run_unit

# A unit's payload and result travel as one line each (a fit's data can be large).
MAX_LINE = 256 * 1024 * 1024


class ChildLost(Exception):
    """The child died (killed on purpose, or crashed) before it answered."""


class Child:
    """The agent's handle on one child process."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Child:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from park.worker.child import main; main()", str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=MAX_LINE,
        )  # fmt: skip
        return self

    async def run(self, unit: dict[str, Any], patterns: tuple[str, ...]) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps({"unit": unit, "allow": list(patterns)}).encode() + b"\n")
            await proc.stdin.drain()
            line = await proc.stdout.readline()
        except (ConnectionError, BrokenPipeError) as err:
            raise ChildLost(str(err)) from err
        if not line:
            code = await proc.wait()
            raise ChildLost(f"the child process ended (exit code {code})")
        report: dict[str, Any] = json.loads(line)
        return report

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
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
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what units print goes to the worker's stderr, not into the replies
    for line in sys.stdin:
        request = json.loads(line)
        report = run_unit(request["unit"], AllowList(tuple(request["allow"])))
        replies.write(json.dumps(dataclasses.asdict(report)) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
