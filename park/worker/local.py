"""Worker processes started beside a service on the same machine (`park serve --workers`,
and the Python client's local service)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping


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

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes = []
