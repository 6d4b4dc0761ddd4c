"""Units and workers cannot hold the service hostage (issue 10, part B), shown with a real
`park serve` and real `park worker` processes: cancelling stops running units, units
have a time limit, a failed unit is tried again elsewhere, units go only to workers that
may run them, silent workers expire, and the agent stops promptly with its children."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.helpers import (
    all_events,
    client,
    events_of,
    get_job,
    get_result,
    wait_final,
    worker_named,
    workers,
)
from tests.support import ParkServer, WorkerProcess, free_port, wait_for

SLEEP = "park.builtins:sleep"
REPO = Path(__file__).resolve().parents[2]
FLAKY = {"PARK_ALLOWED_FUNCTIONS": "tests.integration.flaky:*", "PYTHONPATH": str(REPO)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ParkServer]:
    """A server that expires workers silent for 3 s."""
    started = ParkServer(
        data_dir=tmp_path / "park-data", port=free_port(), extra_args=["--worker-timeout", "3"]
    )
    started.start()
    try:
        yield started
    finally:
        started.stop()


def named(server: ParkServer, start_worker: Any, *names: str, **kw: Any) -> list[WorkerProcess]:
    started = [start_worker(server, 1, "--name", name, **kw) for name in names]
    with client(server.url) as http:
        wait_for(lambda: all(worker_named(http, n) for n in names), timeout=30)
    return started


def submit(http: httpx.Client, function: str, inputs: list[Any], **extra: Any) -> dict[str, Any]:
    body = {"kind": "map", "spec": {"function": function, "inputs": inputs}, **extra}
    answer = http.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_cancelling_a_sleep_job_frees_both_workers_for_another_users_job(server, start_worker):
    named(server, start_worker, "w1", "w2")
    with client(server.url, "hog") as hog, client(server.url, "other") as other:
        forever = submit(hog, SLEEP, [1e6, 1e6])
        wait_for(lambda: all(w["units_leased"] == 1 for w in workers(hog)), timeout=30)
        time.sleep(1.5)  # both units are running in the workers' children
        waiting = submit(other, SLEEP, [1.0, 1.0])
        assert get_job(other, waiting["id"])["status"] == "pending"

        assert hog.post(f"/v1/jobs/{forever['id']}/cancel").status_code == 200
        answered_at = time.time()
        done = wait_final(other, waiting["id"], timeout=30)
        assert done["status"] == "complete", done
        # Both workers stopped their 1e6-second units and ran one unit of the new job each,
        # each granted (so its worker was free again) within 5 s of the cancel's answer.
        records = all_events(other)
        grants = [e for e in events_of(records, "unit.granted") if e["job_id"] == waiting["id"]]
        assert len({e["worker_id"] for e in grants}) == 2, grants
        freed = max(e["at"] for e in grants) - answered_at
        assert freed < 5.0, f"both workers were free only {freed:.1f} s after the cancel"


def test_a_unit_past_its_time_limit_is_stopped_and_fails_its_attempts(server, start_worker):
    named(server, start_worker, "w1")
    with client(server.url) as http:
        job = submit(http, SLEEP, [1e6], max_unit_seconds=1.0, max_attempts=2)
        assert job["max_unit_seconds"] == 1.0
        final = wait_final(http, job["id"], timeout=40)
        assert final["status"] == "failed"
        assert "(attempt 2 of 2)" in final["error"]
        assert "ran out of time (max_unit_seconds)" in final["error"]
        failures = [e for e in events_of(all_events(http), "unit.failed")]
        assert [(e["attempt"], e.get("retry", False)) for e in failures] == [(1, True), (2, False)]
        # Above the server's cap: refused, naming the field.
        refused = http.post(
            "/v1/jobs",
            json={"kind": "map", "spec": {"function": SLEEP, "inputs": [1]},
                  "max_unit_seconds": 1e9},
        )  # fmt: skip
        assert refused.status_code == 422
        assert refused.json()["error"]["message"].startswith("max_unit_seconds:")


def test_a_unit_failing_once_succeeds_on_retry_on_the_other_worker(server, start_worker, tmp_path):
    named(server, start_worker, "w1", "w2", env=FLAKY)
    marker = tmp_path / "failed-once"
    with client(server.url) as http:
        job = submit(http, "tests.integration.flaky:fail_first", [[str(marker), "ok"]])
        final = wait_final(http, job["id"], timeout=30)
        assert final["status"] == "complete", final
        assert get_result(http, job["id"])["result"] == ["ok"]
        records = all_events(http)
        grants = [e for e in events_of(records, "unit.granted") if e["job_id"] == job["id"]]
        (failure,) = events_of(records, "unit.failed")
        assert [g["attempt"] for g in grants] == [1, 2]
        assert (failure["attempt"], failure["retry"]) == (1, True)
        assert "first attempt fails on purpose" in failure["error"]
        assert failure["worker_id"] == grants[0]["worker_id"] != grants[1]["worker_id"]
        (completed,) = events_of(records, "unit.completed")
        assert completed["worker_id"] == grants[1]["worker_id"]


def test_units_go_only_to_the_worker_allowed_to_run_them(server, start_worker):
    named(server, start_worker, "plain")
    named(server, start_worker, "json-ok", env={"PARK_ALLOWED_FUNCTIONS": "json:*"})
    with client(server.url) as http:
        allowed = {w["name"]: w["allowed"] for w in workers(http)}
        assert allowed == {"plain": [], "json-ok": ["json:*"]}
        inputs: list[Any] = [[i] for i in range(8)]
        job = submit(http, "json:dumps", inputs)
        final = wait_final(http, job["id"], timeout=30)
        assert final["status"] == "complete", final
        json_ok = worker_named(http, "json-ok")
        assert json_ok is not None
        grants = [
            e for e in events_of(all_events(http), "unit.granted") if e["job_id"] == job["id"]
        ]
        assert len(grants) == 8
        assert {g["worker_id"] for g in grants} == {json_ok["id"]}

        # A job no connected worker may run waits, and explain says why; it is not failed.
        stuck = submit(http, "os:getcwd", [None])
        time.sleep(1.0)
        assert get_job(http, stuck["id"])["status"] == "pending"
        reasons = http.get(f"/v1/jobs/{stuck['id']}/explain").json()["reasons"]
        assert any("allows os:getcwd" in r for r in reasons), reasons


def test_a_worker_killed_with_kill_9_expires_and_its_unit_runs_elsewhere(server, start_worker):
    (doomed,) = named(server, start_worker, "doomed")
    with client(server.url) as http:
        doomed_id = worker_named(http, "doomed")["id"]  # type: ignore[index]
        job = submit(http, SLEEP, [0.5])
        wait_for(lambda: worker_named(http, "doomed")["units_leased"] == 1, timeout=30)
        doomed.kill()
        records = wait_for(
            lambda: (r := all_events(http)) and events_of(r, "worker.expired") and r, timeout=30
        )
        (expired,) = events_of(records, "worker.expired")
        assert expired["worker_id"] == doomed_id
        lost = [e for e in events_of(records, "unit.lease_expired") if e["worker_id"] == doomed_id]
        assert len(lost) == 1 and lost[0]["offset"] < expired["offset"]
        assert worker_named(http, "doomed") is None  # no longer active
        gone = [w for w in workers(http, active=False) if w["id"] == doomed_id]
        assert gone[0]["expired"] is True
        named(server, start_worker, "survivor")
        assert wait_final(http, job["id"], timeout=30)["status"] == "complete"


def test_the_agent_stops_promptly_and_its_children_die_with_it(server, start_worker):
    first, second = named(server, start_worker, "term", "kill")
    with client(server.url) as http:
        submit(http, SLEEP, [1e6, 1e6])
        wait_for(lambda: all(w["units_leased"] == 1 for w in workers(http)), timeout=30)
        kids = {w.proc.pid: children_of(w.proc.pid) for w in (first, second)}
        assert all(kids.values())

        # SIGTERM: out within seconds, its unit given back at once, its child gone.
        term_id = worker_named(http, "term")["id"]  # type: ignore[index]
        started = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        first.proc.wait(timeout=15)
        assert time.monotonic() - started < 5.0
        assert worker_named(http, "term") is None
        given_back = events_of(all_events(http), "unit.lease_expired")
        assert [e["worker_id"] for e in given_back] == [term_id]
        wait_for(lambda: not any(alive(pid) for pid in kids[first.proc.pid]), timeout=5)

        # kill -9 of the agent alone (not its process group): its child dies too.
        os.kill(second.proc.pid, signal.SIGKILL)
        second.proc.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in kids[second.proc.pid]), timeout=10)


def test_an_unreachable_server_is_said_at_once_and_retried(start_worker, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nowhere = ParkServer(data_dir=tmp_path / "none", port=port)
    worker = start_worker(nowhere, 1, "--name", "lonely")
    log = tmp_path / "worker-0.log"
    wait_for(lambda: "unreachable" in log.read_text(), timeout=15)
    assert f"127.0.0.1:{port}" in log.read_text()
    time.sleep(1.0)
    assert worker.proc.poll() is None  # still retrying
    # The server comes: the worker registers and serves.
    nowhere.start()
    try:
        with client(nowhere.url) as http:
            wait_for(lambda: worker_named(http, "lonely"), timeout=30)
            done = wait_final(http, submit(http, SLEEP, [0.01])["id"], timeout=30)
            assert done["status"] == "complete"
        assert "answers again" in log.read_text()
    finally:
        worker.stop()
        nowhere.stop()
