"""A batch that runs long reports its finished units as it goes: a real `park serve` and
a real `park worker` (one CPU), a map job whose last batch holds a short unit before a
long one. The short unit's completion is in the log a second into the batch, while the
long one still runs, not only when the whole batch ends."""

from __future__ import annotations

from typing import Any

from tests.integration.helpers import all_events, client, submit_map, wait_final
from tests.support import ParkServer, wait_for

LONG = 3.0


def test_a_long_batch_reports_its_finished_units_while_it_runs(
    park_server: ParkServer, start_worker: Any
) -> None:
    start_worker(park_server)
    with client(park_server.url, user="ann") as http:
        wait_for(lambda: len(http.get("/v1/workers").json()["workers"]) == 1, timeout=60)
        # Leases of 1, 2 and 2 units (a job's share of a lease grows with its timed
        # units): the last batch is [0.1 s, LONG].
        job_id = submit_map(http, "park.builtins:sleep", [0.1, 0.1, 0.1, 0.1, LONG])["id"]
        assert wait_final(http, job_id, timeout=LONG + 60)["status"] == "complete"
        events = [r["event"] for r in all_events(http)]
    granted = [e for e in events if e["type"] == "unit.granted" and e["job_id"] == job_id]
    done = {e["unit_id"]: e for e in events if e["type"] == "unit.completed"}
    short, long = f"{job_id}/3", f"{job_id}/4"
    same_batch = [g["at"] for g in granted if g["unit_id"] in (short, long)]
    assert len(same_batch) == 2 and same_batch[0] == same_batch[1], granted
    # Reported about a second into the batch, the long unit still running.
    assert done[short]["at"] < done[long]["at"] - 1.0, (done[short], done[long])
    assert done[long]["wall_seconds"] >= LONG
