"""Backup attempts on a real `park serve` with real `park worker` processes: a job whose
units wait on one worker behind a long unit while another worker idles finishes by the
idle worker's backups; the slow worker is told to stop them and is not charged; a backup
that loses to the first attempt is stopped and discarded; `park replay --verify` re-makes
every backup decision from the log; a job with fewer units than idle workers is cut; on
a Kafka log the scheduler leader backs up a straggler for a worker whose ask waits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import all_events, client, submit_map, wait_final
from tests.kafka_fixture import kafka_url, unique_topic
from tests.kinds.test_fit_kind import sine_spec
from tests.support import ParkServer, free_port, wait_for

LONG = 3.0  # the straggler: the other worker backs it up too, and loses


def granted_to(events: list[dict[str, Any]], job_id: str) -> dict[str, list[tuple[str, bool]]]:
    """Per unit: (worker, backup?) of each grant, in order."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for e in events:
        if e["type"] == "unit.granted" and e["job_id"] == job_id:
            out.setdefault(e["unit_id"], []).append((e["worker_id"], e.get("backup", False)))
    return out


def test_idle_workers_back_up_stragglers_first_report_wins_loser_stopped_and_uncharged(
    park_server: ParkServer, start_worker: Any, tmp_path: Path
) -> None:
    start_worker(park_server)
    start_worker(park_server)
    with client(park_server.url, user="ann") as http:
        wait_for(lambda: len(http.get("/v1/workers").json()["workers"]) == 2, timeout=60)
        # One worker is kept busy for a second by another job ...
        busy = submit_map(http, "park.builtins:sleep", [1.0])
        wait_for(lambda: http.get(f"/v1/jobs/{busy['id']}").json()["status"] == "running")
        # ... while the other runs ann's: unit 0 alone (no timing yet), then the other five
        # as one batch (~0.5 s of work by the 0.1 s median), the long one first.
        job = submit_map(http, "park.builtins:sleep", [0.1, LONG, 0.1, 0.1, 0.1, 0.1],
                         priority="normal")  # fmt: skip
        job_id = job["id"]

        def backed_up_long() -> dict[str, Any] | None:
            units = http.get(f"/v1/jobs/{job_id}/units").json()["units"]
            long = next((u for u in units if u["id"] == f"{job_id}/1"), None)
            return long if long is not None and long["backup_worker"] else None

        # The idle worker backs up the four short units, then the long one itself.
        long = wait_for(backed_up_long, timeout=LONG + 20)
        why = http.get(f"/v1/jobs/{job_id}/explain").json()
        assert [b["unit"] for b in why["backups"]] == [f"{job_id}/1"]
        assert any("backup attempt" in r for r in why["reasons"]), why["reasons"]
        done = wait_final(http, job_id, timeout=LONG + 30)
        assert done["status"] == "complete"
        assert http.get(f"/v1/jobs/{job_id}/result").json()["result"] == [
            0.1, LONG, 0.1, 0.1, 0.1, 0.1
        ]  # fmt: skip
        wait_final(http, busy["id"])
        events = [r["event"] for r in all_events(http)]
        ledger = http.get("/v1/ledger/ann").json()["users"]["ann"]

    slow, idle = long["worker"], long["backup_worker"]
    grants = granted_to(events, job_id)
    completed = {
        e["unit_id"]: e for e in events if e["type"] == "unit.completed" and e["job_id"] == job_id
    }
    shorts = [f"{job_id}/{i}" for i in range(2, 6)]
    batched = [u for u in shorts if grants[u][0] == (slow, False)]
    assert batched, grants  # the slow worker's batch held short units behind the long one
    for unit in shorts:
        if unit in batched:  # backed up by the idle worker, whose report won
            assert grants[unit] == [(slow, False), (idle, True)], (unit, grants[unit])
        else:  # left queued after the batch: the idle worker's as any unit
            assert grants[unit] == [(idle, False)], (unit, grants[unit])
        assert completed[unit]["worker_id"] == idle
    # The long unit: the idle worker's backup lost to the first attempt.
    assert grants[f"{job_id}/1"] == [(slow, False), (idle, True)]
    assert completed[f"{job_id}/1"]["worker_id"] == slow
    # Each unit completed once: the slow worker was stopped before it ran the shorts,
    # and the idle worker's losing backup of the long unit was stopped too.
    reports = [e for e in events if e["type"] == "unit.completed" and e["job_id"] == job_id]
    assert sorted(e["unit_id"] for e in reports) == sorted(completed)
    # Only the winning attempts are charged, each at its own slot time: the backups'
    # ~0.1 s each, not the time the shorts waited in the slow worker's batch.
    for unit in batched:
        assert completed[unit]["slot_seconds"] < 1.0, completed[unit]
    charged = sum(e["charged"] for e in completed.values())
    assert ledger["priorities"]["normal"]["charged"] == pytest.approx(charged)
    assert ledger["priorities"]["normal"]["reserved"] == pytest.approx(0.0)
    assert charged < LONG + 2.0

    park_server.stop()
    verified = subprocess.run(
        [sys.executable, "-m", "park", "replay", "--verify", "--data-dir",
         str(park_server.data_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert ": 0 differ" in verified.stdout, verified.stdout
    assert "backup" not in verified.stdout


def test_a_multistart_with_fewer_units_than_idle_workers_is_split_across_them(
    park_server: ParkServer, start_worker: Any
) -> None:
    start_worker(park_server)
    start_worker(park_server)
    spec = sine_spec("multistart", starts=8, seed=3, per_unit=8)  # one unit of eight starts
    with client(park_server.url, user="ann") as http:
        wait_for(lambda: len(http.get("/v1/workers").json()["workers"]) == 2, timeout=60)
        response = http.post("/v1/jobs", json={"kind": "fit", "spec": spec})
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        done = wait_final(http, job_id, timeout=60)
        assert done["status"] == "complete"
        result = http.get(f"/v1/jobs/{job_id}/result").json()["result"]
        events = [r["event"] for r in all_events(http)]
    (split,) = [e for e in events if e["type"] == "units.split"]
    assert split["unit_id"] == f"{job_id}/0"
    assert [(u["payload"]["first"], len(u["payload"]["starts"])) for u in split["units"]] == [
        (0, 4), (4, 4)
    ]  # fmt: skip
    # Each idle worker was given a half (which report won is timing: a worker still
    # importing scipy may lose its half to the other's backup); every start was fitted.
    firsts = {
        e["worker_id"]
        for e in events
        if e["type"] == "unit.granted" and e["job_id"] == job_id and not e.get("backup")
    }
    assert len(firsts) == 2, [e for e in events if e["type"] == "unit.granted"]
    assert done["units_summary"]["done"] == 2
    assert result["starts"] == 8 and len(result["history"]) == 8
    assert all(h["chisq"] is not None for h in result["history"])


def test_on_kafka_the_leader_backs_up_a_straggler_for_a_waiting_worker(
    kafka_bootstrap: str, tmp_path: Path, start_worker: Any
) -> None:
    # On a shared log a worker's lease is an ask the scheduler leader answers; with
    # nothing queued, no fold says when a unit becomes a straggler, so the leader must
    # look again then by itself, or the idle worker's ask waits out its whole poll.
    server = ParkServer(
        data_dir=tmp_path / "park-data",
        port=free_port(),
        extra_args=["--log", kafka_url(kafka_bootstrap, unique_topic("park-backups"))],
    )
    server.start()
    try:
        start_worker(server)
        start_worker(server)
        with client(server.url, user="ann") as http:
            wait_for(lambda: len(http.get("/v1/workers").json()["workers"]) == 2, timeout=60)
            job_id = submit_map(http, "park.builtins:sleep", [0.1, 2 * LONG, 0.1, 0.1, 0.1])["id"]

            def backed_up() -> dict[str, Any] | None:
                units = http.get(f"/v1/jobs/{job_id}/units").json()["units"]
                return next((u for u in units if u["backup_worker"]), None)

            unit = wait_for(backed_up, timeout=2 * LONG)  # long before the poll's end
            assert unit["worker"] != unit["backup_worker"]
            assert wait_final(http, job_id, timeout=4 * LONG + 30)["status"] == "complete"
            events = [r["event"] for r in all_events(http)]
        backups = [e for e in granted_to(events, job_id).values() if any(b for _, b in e)]
        assert backups, granted_to(events, job_id)
    finally:
        server.stop()
