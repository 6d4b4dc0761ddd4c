"""Crash safety with the real processes: a server killed with -9 and restarted, a worker
killed with -9, two workers racing to report one unit, a prompt graceful stop."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.helpers import (
    all_events,
    by_unit,
    client,
    events_of,
    get_job,
    get_result,
    planned_units,
    submit_map,
    wait_final,
    worker_named,
    workers,
)
from tests.support import ParkServer, free_port, wait_for

SLEEP = "park.builtins:sleep"
BURN = "park.builtins:burn"


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ParkServer]]:
    """Start a server of one's own (e.g. with a short lease); stopped at the end."""
    started: list[ParkServer] = []

    def make(lease_seconds: float = 30.0) -> ParkServer:
        server = ParkServer(
            data_dir=tmp_path / f"park-data-{len(started)}",
            port=free_port(),
            lease_seconds=lease_seconds,
        )
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


def start_named(server: ParkServer, start_worker: Any, *names: str) -> list[Any]:
    procs = [start_worker(server, 1, "--name", name) for name in names]
    with client(server.url) as http:
        wait_for(lambda: all(worker_named(http, n) for n in names), timeout=20)
    return procs


class Submitter(threading.Thread):
    """Submits small jobs in a loop, through a crash, and remembers which were accepted
    (answered 201); a request the crash cut off counts as not accepted."""

    def __init__(self, url: str, user: str) -> None:
        super().__init__(daemon=True)
        self.url, self.user = url, user
        self.accepted: list[tuple[str, list[float]]] = []
        self.refused = 0
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        with httpx.Client(base_url=self.url, headers={"X-Park-User": self.user}) as http:
            while not self.halt.is_set():
                inputs = [round(0.001 * n, 3), round(0.001 * n + 0.0005, 4)]
                body = {"kind": "map", "spec": {"function": SLEEP, "inputs": inputs}}
                try:
                    response = http.post("/v1/jobs", json=body, timeout=2.0)
                except httpx.TransportError:
                    self.refused += 1
                else:
                    if response.status_code == 201:
                        self.accepted.append((response.json()["id"], inputs))
                    else:
                        self.refused += 1
                n += 1
                # Five small jobs a second: a stream the pool outruns, so the older jobs
                # progress at their share while it goes on (a stream faster than the pool
                # would build a backlog of jobs, each taking its turn before them).
                self.halt.wait(0.2)


def test_server_kill9_mid_job_loses_nothing_and_counts_nothing_twice(make_server, start_worker):
    # A short lease so a grant whose answer the crash swallowed is re-granted soon.
    server = make_server(lease_seconds=3.0)
    start_named(server, start_worker, "w0", "w1")
    user = "crash-user"
    sleeps = [round(0.2 + 0.001 * i, 3) for i in range(40)]
    burns = [0.05] * 12
    with client(server.url, user=user) as http:
        free_job = submit_map(http, SLEEP, sleeps)
        paid_job = submit_map(http, BURN, burns, priority="normal")
        submitter = Submitter(server.url, user)
        submitter.start()
        try:
            # Kill while units are under lease and work is left.
            wait_for(lambda: get_job(http, free_job["id"])["progress"]["done"] >= 4, timeout=20)
            wait_for(lambda: any(w["units_leased"] for w in workers(http)), timeout=10)
            assert get_job(http, free_job["id"])["status"] == "running"
            server.kill()
            assert server.proc is not None and server.proc.returncode == -9
            time.sleep(0.5)  # workers find the server gone and retry
            server.start()
            before_restart = len(submitter.accepted)
            wait_for(lambda: len(submitter.accepted) >= before_restart + 3, timeout=10)
        finally:
            submitter.halt.set()
            submitter.join(timeout=10)
        assert submitter.accepted

        # Every accepted job completes, with every output in its place.
        expected = {free_job["id"]: sleeps, paid_job["id"]: burns}
        expected.update(dict(submitter.accepted))
        for job_id, inputs in expected.items():
            final = wait_final(http, job_id, timeout=60)
            assert final["status"] == "complete", final
            assert final["progress"]["done"] == final["progress"]["total"]
            assert get_result(http, job_id)["result"] == inputs
        # A submission the crash cut off may still have been recorded: it completes too.
        listing = http.get("/v1/jobs").json()["jobs"]
        assert {j["id"] for j in listing} >= set(expected)
        for job in listing:
            assert wait_final(http, job["id"], timeout=30)["status"] == "complete"

        # Exactly one completion per unit, although reports were retried across the crash.
        records = all_events(http)
        units = planned_units(records)
        assert len(units) == len(set(units))
        completions = by_unit(events_of(records, "unit.completed"))
        assert set(completions) == set(units)
        twice = {u: len(c) for u, c in completions.items() if len(c) != 1}
        assert twice == {}

        # The ledger counts each unit once and charges what the completions say.
        priority_of = {e["job_id"]: e["priority"] for e in events_of(records, "job.submitted")}
        cpu: Counter[str] = Counter()
        slot: Counter[str] = Counter()
        count: Counter[str] = Counter()
        for (event,) in completions.values():
            cpu[priority_of[event["job_id"]]] += event["cpu_seconds"]
            slot[priority_of[event["job_id"]]] += event.get("slot_seconds", 0.0)
            count[priority_of[event["job_id"]]] += 1
        ledger = http.get(f"/v1/ledger/{user}").json()["users"][user]
        rows = ledger["priorities"]
        assert set(rows) == {"free", "normal"}
        assert ledger["units"] == sum(row["units"] for row in rows.values()) == len(units)
        for priority, row in rows.items():
            assert row["units"] == count[priority]
            assert row["core_seconds"] == pytest.approx(cpu[priority], rel=1e-9, abs=1e-9)
            assert row["reserved"] == pytest.approx(0.0, abs=1e-9)
        assert rows["free"]["charged"] == 0.0
        assert rows["normal"]["units"] == len(burns)
        assert cpu["normal"] >= 0.5 * 0.05 * len(burns)  # burn really used the CPU
        # Charged by slot time: the wall time each unit held a worker's CPU.
        assert slot["normal"] >= 0.9 * cpu["normal"]
        assert rows["normal"]["slot_seconds"] == pytest.approx(slot["normal"], rel=1e-9)
        assert rows["normal"]["charged"] == pytest.approx(slot["normal"] * 1.0, rel=1e-9)
        assert ledger["charged"] == pytest.approx(rows["normal"]["charged"], rel=1e-9)
        assert ledger["core_seconds"] == pytest.approx(sum(cpu.values()), rel=1e-9)
        assert ledger["reserved"] == pytest.approx(0.0, abs=1e-9)


def test_killed_worker_units_are_regranted_after_its_lease_expires(make_server, start_worker):
    server = make_server(lease_seconds=2.0)
    doomed, _survivor = start_named(server, start_worker, "doomed", "survivor")
    inputs = [round(0.3 + 0.001 * i, 3) for i in range(16)]
    with client(server.url) as http:
        doomed_id = worker_named(http, "doomed")["id"]
        survivor_id = worker_named(http, "survivor")["id"]
        job = submit_map(http, SLEEP, inputs)
        wait_for(lambda: worker_named(http, "doomed")["units_leased"] >= 1, timeout=20)
        doomed.kill()
        killed_at = time.monotonic()

        final = wait_final(http, job["id"], timeout=30)
        assert final["status"] == "complete", final
        assert get_result(http, job["id"])["result"] == inputs
        # The lost units waited out the lease (2 s) rather than the job hanging for good.
        assert time.monotonic() - killed_at < 25

        records = all_events(http)
        expired = [e for e in events_of(records, "unit.lease_expired") if e["job_id"] == job["id"]]
        lost = {e["unit_id"] for e in expired if e["worker_id"] == doomed_id}
        assert lost, "the killed worker held no lease that expired"
        grants = by_unit(events_of(records, "unit.granted"))
        completions = by_unit(events_of(records, "unit.completed"))
        for unit_id in lost:
            expiry = next(e for e in expired if e["unit_id"] == unit_id)
            first, *later = grants[unit_id]
            assert first["worker_id"] == doomed_id and first["offset"] < expiry["offset"]
            regrants = [g for g in later if g["offset"] > expiry["offset"]]
            assert regrants and regrants[0]["worker_id"] == survivor_id
            (done,) = completions[unit_id]
            assert done["worker_id"] == survivor_id
        assert set(completions) == set(planned_units(records, job["id"]))
        assert all(len(c) == 1 for c in completions.values())


@pytest.mark.parametrize("first", ["stale_holder", "current_holder"])
def test_first_report_wins_when_two_workers_held_one_unit(make_server, first):
    """A unit whose lease ran out is granted again; both holders report. The first report
    settles it, the second is ignored, though the job is still running (its other unit is
    out with a third worker), so nothing but the unit's own state can refuse it."""
    server = make_server(lease_seconds=1.0)
    user = "race-user"
    with client(server.url, user=user) as http:

        def register(name: str) -> str:
            answer = http.post("/v1/workers", json={"name": name, "cpus": 1})
            assert answer.status_code == 201, answer.text
            assert answer.json()["lease_seconds"] == 1.0
            return str(answer.json()["id"])

        def lease(worker_id: str, wait: float = 0.0) -> list[dict[str, Any]]:
            body = {"max_units": 1, "wait": wait}
            answer = http.post(f"/v1/workers/{worker_id}/lease", json=body)
            assert answer.status_code == 200, answer.text
            return answer.json()["units"]  # type: ignore[no-any-return]

        def report(worker_id: str, unit_id: str, result: Any, cpu: float) -> dict[str, Any]:
            body = {"reports": [{"unit_id": unit_id, "ok": True, "result": result,
                                 "cpu_seconds": cpu}]}  # fmt: skip
            answer = http.post(f"/v1/workers/{worker_id}/reports", json=body)
            assert answer.status_code == 200, answer.text
            return answer.json()  # type: ignore[no-any-return]

        def keep_alive(worker_id: str, unit_id: str) -> None:
            body = {"unit_ids": [unit_id]}
            answer = http.post(f"/v1/workers/{worker_id}/heartbeat", json=body)
            assert answer.status_code == 200, answer.text

        stale, current, other = register("stale"), register("current"), register("other")
        job = submit_map(http, SLEEP, [7.0, 8.0], priority="normal")
        (raced,) = lease(stale)
        (spare,) = lease(other)
        assert {raced["job_id"], spare["job_id"]} == {job["id"]}
        assert lease(current) == []  # no second grant while the leases hold

        def raced_expired() -> bool:
            keep_alive(other, spare["id"])  # only the raced unit's lease may run out
            expired = events_of(all_events(http), "unit.lease_expired")
            return any(e["unit_id"] == raced["id"] for e in expired)

        wait_for(raced_expired, timeout=10, interval=0.1)
        keep_alive(other, spare["id"])
        (again,) = lease(current, wait=5.0)
        assert again["id"] == raced["id"]

        order = [(stale, ["from stale"], 0.25), (current, ["from current"], 0.5)]
        if first == "current_holder":
            order.reverse()
        (winner, result, cpu), (loser, late_result, late_cpu) = order
        assert report(winner, raced["id"], result, cpu) == {"accepted": 1, "ignored": []}
        assert get_job(http, job["id"])["status"] == "running"
        assert report(loser, raced["id"], late_result, late_cpu) == {
            "accepted": 0,
            "ignored": [raced["id"]],
        }
        assert report(other, spare["id"], ["spare"], 0.125) == {"accepted": 1, "ignored": []}

        final = wait_final(http, job["id"], timeout=10)
        assert final["status"] == "complete"
        outputs = get_result(http, job["id"])["result"]
        raced_at = int(raced["id"].rsplit("/", 1)[1])
        assert outputs[raced_at] == result[0]
        assert outputs[1 - raced_at] == "spare"

        records = all_events(http)
        completions = by_unit(events_of(records, "unit.completed"))
        (done,) = completions[raced["id"]]
        assert (done["worker_id"], done["result"]) == (winner, result)
        assert len(completions[spare["id"]]) == 1
        granted_to = [
            g["worker_id"] for g in by_unit(events_of(records, "unit.granted"))[raced["id"]]
        ]
        assert granted_to == [stale, current]

        # Charged once per unit, for the first reports; nothing stays reserved.
        ledger = http.get(f"/v1/ledger/{user}").json()["users"][user]
        assert list(ledger["priorities"]) == ["normal"]
        entry = ledger["priorities"]["normal"]
        assert ledger["units"] == entry["units"] == 2
        assert entry["core_seconds"] == pytest.approx(cpu + 0.125)
        # Charged by slot time: the time reported (here only CPU time), never more than
        # the current holder held the lease.
        slots = [e.get("slot_seconds", 0.0) for e in events_of(records, "unit.completed")]
        assert 0 < sum(slots) <= cpu + 0.125
        assert entry["slot_seconds"] == pytest.approx(sum(slots))
        assert entry["charged"] == pytest.approx(sum(slots) * 1.0)
        assert entry["reserved"] == pytest.approx(0.0)
        by_worker = {w["id"]: w["units_done"] for w in workers(http)}
        assert by_worker == {winner: 1, loser: 0, other: 1}


def test_graceful_stop_is_prompt_and_restart_resumes(make_server, start_worker):
    """SIGTERM while a worker long-polls: the server stops within a second or two, and a
    restart on the same data directory knows every job."""
    server = make_server()
    (worker,) = start_named(server, start_worker, "poller")
    with client(server.url) as http:
        done = wait_final(http, submit_map(http, SLEEP, [0.01, 0.02])["id"])
        assert done["status"] == "complete"
        time.sleep(0.5)  # the worker is back in a long-poll
        offset = http.get("/healthz").json()["offset"]
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5.0  # was 8-10 s while polls held it up
    # uvicorn re-raises SIGTERM once its graceful shutdown is done; the snapshot the
    # service writes on the way out shows the shutdown ran, not a kill.
    assert server.proc is not None and server.proc.returncode in (0, -15)
    assert list((server.data_dir / "snapshots").glob("state-*.pickle"))
    worker.kill()

    server.start()
    with client(server.url) as http:
        assert http.get("/healthz").json()["offset"] >= offset
        assert get_result(http, done["id"])["result"] == [0.01, 0.02]
