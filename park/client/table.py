"""`park.JobTable`: a live, consistent client-side view of a service's active jobs.

It follows `GET /v1/jobs/stream` in a background thread: a snapshot, then changes. If the
connection drops it reconnects with `Last-Event-ID`, so nothing is missed or repeated (or,
if the server can no longer resume that far back, it takes a fresh snapshot). Callbacks
run on the table's thread after each change has been applied.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import connect_sse

from park.client.service import RemoteService


@dataclass(frozen=True, slots=True)
class TableChange:
    """`op` is "snapshot" (the whole table was replaced; `job` is None), "upsert" or
    "remove"."""

    op: str
    offset: int
    job: dict[str, Any] | None


Callback = Callable[[TableChange], object]


class JobTable:
    def __init__(
        self,
        service: RemoteService | None = None,
        *,
        user: str | None = None,
        tags: dict[str, str] | None = None,
        start: bool = True,
    ) -> None:
        if service is None:
            from park.client.api import default_service

            service = default_service()
        self.service = service
        self.params: dict[str, Any] = {
            "user": user,
            "tag": [f"{k}={v}" for k, v in (tags or {}).items()],
        }
        self.offset: int | None = None
        self.connections = 0
        self._jobs: dict[str, dict[str, Any]] = {}
        self._callbacks: list[Callback] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._http: httpx.Client | None = None
        self._response: httpx.Response | None = None
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        """A copy of the active jobs by id, as of `offset`."""
        with self._lock:
            return dict(self._jobs)

    def on_change(self, callback: Callback) -> Callback:
        """Register `callback(change)`; usable as a decorator."""
        self._callbacks.append(callback)
        return callback

    def start(self) -> None:
        if self._thread is None:
            _ = self.service.http  # a local service starts here, in the caller's thread
            self._thread = threading.Thread(target=self._follow, name="park-job-table", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.drop_connection()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> JobTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, predicate: Callable[[JobTable], bool], timeout: float = 30.0) -> bool:
        """Block until `predicate(table)` holds (checked after every change)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def drop_connection(self) -> None:
        """Cut the current connection (the table reconnects by itself unless closed). The
        socket is shut down, which wakes the follower thread from its blocking read."""
        response = self._response
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- the follower thread --------------------------------------------------------------

    def _follow(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            headers = {"Last-Event-ID": str(self.offset)} if self.offset is not None else {}
            if self.service.token:
                headers["Authorization"] = f"Bearer {self.service.token}"
            self._http = httpx.Client(
                base_url=self.service.url, timeout=httpx.Timeout(5.0, read=60.0)
            )
            try:
                params = {k: v for k, v in self.params.items() if v}
                with connect_sse(
                    self._http, "GET", "/v1/jobs/stream", params=params, headers=headers
                ) as source:
                    source.response.raise_for_status()
                    self._response = source.response
                    self.connections += 1
                    delay = 0.1
                    for message in source.iter_sse():
                        self._apply(message.event, json.loads(message.data))
            except (httpx.HTTPError, RuntimeError, ValueError):
                pass  # dropped or refused: reconnect below, resuming from self.offset
            finally:
                self._response = None
                self._http.close()
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, 5.0)

    def _apply(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            if event == "snapshot":
                self._jobs = {job["id"]: job for job in data["jobs"]}
                change = TableChange("snapshot", data["offset"], None)
            elif event == "change":
                job = data["job"]
                if data["op"] == "remove":
                    self._jobs.pop(job["id"], None)
                else:
                    self._jobs[job["id"]] = job
                change = TableChange(data["op"], data["offset"], job)
            else:
                return
            self.offset = change.offset
            self._lock.notify_all()
        for callback in self._callbacks:
            callback(change)
