"""The local service: park on this machine, started on first use, stopped at exit.

It runs the same service and API as `park serve` in a background thread, on a private
loopback port, with its own worker processes, on an embedded log in the user's cache
(`$XDG_CACHE_HOME/park`, by default `~/.cache/park`). Jobs survive the process: the next
script that uses the same data directory resumes them. Only one process serves a data
directory at a time (a lock file); another process using it talks to that one.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from park import datadir
from park.client.errors import ServiceUnavailable
from park.client.http import ParkHttp
from park.client.service import RemoteService
from park.identity import usertag
from park.worker.local import LocalWorkers

if TYPE_CHECKING:
    from park.server import ParkUvicorn


ADDRESS = "local.json"


def default_data_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "park"


class LocalService(RemoteService):
    def __init__(self, data_dir: str | Path | None = None, workers: int | None = None) -> None:
        super().__init__("http://127.0.0.1:0", name="local")
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._start_lock = threading.Lock()
        self._server: ParkUvicorn | None = None
        self._thread: threading.Thread | None = None
        self._local_workers: LocalWorkers | None = None
        self._lock_file: IO[str] | None = None

    @property
    def http(self) -> ParkHttp:
        self.start()
        return super().http

    @property
    def running(self) -> bool:
        return self._server is not None or self._http is not None

    def start(self) -> None:
        with self._start_lock:
            if self._http is not None:
                return
            data_dir = self.data_dir or default_data_dir()
            data_dir.mkdir(parents=True, exist_ok=True)
            lock = datadir.hold(data_dir, f"process {os.getpid()} (the local park service)")
            if lock is None:
                self.url, self.token = self._address_of_owner(data_dir)
            else:
                self._lock_file = lock
                (data_dir / ADDRESS).unlink(missing_ok=True)  # a dead owner's address
                self.url = self._serve(data_dir)
            self._http = ParkHttp(self.url, self.token)
            atexit.register(self.shutdown)

    def _address_of_owner(self, data_dir: Path, timeout: float = 20.0) -> tuple[str, str]:
        """Another process serves this data directory: use it once it has said where (and
        with which token: only this user can read the file)."""
        deadline = time.monotonic() + timeout
        address = data_dir / ADDRESS
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
                said = json.loads(address.read_text())
                return str(said["url"]), str(said["token"])
            time.sleep(0.05)
        raise ServiceUnavailable(f"the local park service in {data_dir} did not say its address")

    def _serve(self, data_dir: Path) -> str:
        import uvicorn  # the server side is only loaded by the process that serves

        from park.api.app import ApiSettings, create_app
        from park.api.auth import Role, TokenTable
        from park.events.sqlite import SqliteEventLog
        from park.server import ParkUvicorn
        from park.service.engine import ParkService
        from park.service.snapshots import SnapshotStore

        service = ParkService(
            SqliteEventLog.in_data_dir(data_dir), snapshots=SnapshotStore.in_data_dir(data_dir)
        )
        # Even on loopback, other accounts on this machine must not reach a service whose
        # workers run any function: it takes random tokens, kept in a file only we read.
        self.token = secrets.token_urlsafe(24)
        worker_token = secrets.token_urlsafe(24)
        tokens = TokenTable(
            {self.token: (usertag(), Role.ADMIN), worker_token: ("local-workers", Role.WORKER)}
        )
        app = create_app(service, ApiSettings(tokens=tokens))
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
        )
        server = ParkUvicorn(config, service)
        thread = threading.Thread(target=server.run, name="park-local-service", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ServiceUnavailable(f"the local park service in {data_dir} did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        said = json.dumps({"url": url, "pid": os.getpid(), "token": self.token})
        fd = os.open(data_dir / ADDRESS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(said)
        env = {"PARK_ALLOWED_FUNCTIONS": os.environ.get("PARK_ALLOWED_FUNCTIONS", "*")}
        self._local_workers = LocalWorkers(url, self.workers, token=worker_token, env=env)
        self._local_workers.start()
        self._server, self._thread = server, thread
        return url

    def shutdown(self) -> None:
        """Stop workers and server (a final snapshot is written); safe to call twice."""
        with self._start_lock:
            if self._local_workers is not None:
                self._local_workers.stop()
                self._local_workers = None
            if self._server is not None and self._thread is not None:
                self._server.should_exit = True
                self._thread.join(timeout=30)
                self._server = self._thread = None
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None
            super().close()
            atexit.unregister(self.shutdown)
