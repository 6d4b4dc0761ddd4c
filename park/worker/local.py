"""Worker processes started beside a service on the same machine (`park serve --workers`,
and the Python client's local service)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

log = logging.getLogger("park")

# A worker told to leave stops its units' children and says goodbye (at most 5 s).
STOP_SECONDS = 8.0


class LocalWorkers:
    def __init__(
        self,
        server_url: str,
        count: int,
        *,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.server_url = server_url
        self.count = count
        self.token = token
        self.env = dict(env or {})
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = {**os.environ, **self.env}
        if self.token:
            env["PARK_TOKEN"] = self.token
        command = [sys.executable, "-m", "park", "worker", "--server", self.server_url]
        # Their own session: Ctrl-C in a terminal reaches the server alone, which stops
        # them in order (a worker still importing would print a KeyboardInterrupt). Tied
        # to this server, they give up on it sooner than a standalone worker.
        command += ["--cpus", "1", "--give-up-after", "60"]
        for _ in range(self.count):
            self.processes.append(subprocess.Popen(command, env=env, start_new_session=True))

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask them to leave (SIGTERM: their leases are given back at once); whichever
        still runs `timeout` seconds later is killed with its unit's child (its process
        group), so the server's stop never waits on a worker for long."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("local worker %d did not stop in %.0f s; killed", proc.pid, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == pid
                proc.wait()
        self.processes = []
