"""Fixtures that start the real thing: `park serve` and `park worker` as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ParkServer, WorkerProcess, free_port

pytest_plugins = ["tests.kafka_fixture"]  # kafka_bootstrap: a real broker (Tansu here)


@pytest.fixture
def park_server(tmp_path: Path) -> Iterator[ParkServer]:
    """A started server with no local workers (tests add their own)."""
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[object]:
    started: list[WorkerProcess] = []

    def start(server: ParkServer, cpus: int = 1, *args: str, env: dict[str, str] | None = None):
        log = (tmp_path / f"worker-{len(started)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "park", "worker", "--server", server.url,
             "--cpus", str(cpus), *args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        worker = WorkerProcess(proc)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(autouse=True)
def _logs_meet_the_published_schema(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every SQLite log a test leaves under its tmp_path (a `park serve` data directory,
    an in-process service's log) holds documents of docs/events.schema.json."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if isinstance(tmp_path, Path):
        from tests.events.contract_schema import check_stored_logs

        check_stored_logs(tmp_path)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def mailbox() -> Iterator[object]:
    """A real SMTP server (aiosmtpd) on a loopback port."""
    from tests.notify.receivers import Mailbox

    box = Mailbox().start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def hooks() -> Iterator[object]:
    """A real HTTP receiver for webhooks on a loopback port."""
    from tests.notify.receivers import Hooks

    receiver = Hooks()
    try:
        yield receiver
    finally:
        receiver.close()
