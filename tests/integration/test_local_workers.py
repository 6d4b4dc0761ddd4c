"""`park serve --workers N`: local workers leave when the server stops, so a restart does
not list the previous run's workers as still connected."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support import ParkServer, free_port, wait_for


def active_workers(server: ParkServer) -> list[dict[str, object]]:
    return list(httpx.get(f"{server.url}/v1/workers").json()["workers"])


def test_local_workers_leave_on_stop_and_a_restart_lists_only_the_new_ones(
    tmp_path: Path,
) -> None:
    server = ParkServer(data_dir=tmp_path / "data", port=free_port(), workers=2).start()
    try:
        first = wait_for(lambda: len(active_workers(server)) == 2 and active_workers(server))
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 10
    server.start()
    try:
        second = wait_for(lambda: len(active_workers(server)) == 2 and active_workers(server))
        assert {w["id"] for w in first}.isdisjoint({w["id"] for w in second})
        everyone = httpx.get(f"{server.url}/v1/workers", params={"active": False}).json()
        gone = [w for w in everyone["workers"] if w["id"] in {w["id"] for w in first}]
        assert len(gone) == 2 and all(w["left_at"] is not None for w in gone)
    finally:
        server.stop()
