"""End to end: a real `park serve`, real `park worker` processes, HTTP and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from tests.integration.helpers import (
    all_events,
    client,
    events_of,
    get_job,
    get_result,
    submit_map,
    wait_final,
    worker_named,
    workers,
)
from tests.support import wait_for

SLEEP = "park.builtins:sleep"
BURN = "park.builtins:burn"


def park_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "park", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_named_workers(server: Any, start_worker: Any, names: list[str], **kw: Any) -> list[Any]:
    """Start one single-cpu worker per name; return once the server lists them all."""
    procs = [start_worker(server, 1, "--name", name, **kw) for name in names]
    with client(server.url) as http:
        wait_for(lambda: all(worker_named(http, n) for n in names), timeout=20)
    return procs


def test_map_jobs_run_on_two_workers_and_keep_input_order(park_server, start_worker):
    start_named_workers(park_server, start_worker, ["w0", "w1"])
    # Distinct values in a scrambled order: outputs in any other order would not match.
    sleeps = [0.05, 0.0, 0.12, 0.01, 0.08, 0.03, 0.1, 0.02]
    chunked = [round(0.001 * i, 3) for i in (9, 3, 7, 1, 8, 2, 6, 0, 5, 4)]
    burns = [0.02, 0.05, 0.01, 0.04, 0.03]
    with client(park_server.url, user="alice") as http:
        jobs = {
            "sleep": (submit_map(http, SLEEP, sleeps), sleeps, 8),
            "chunked": (submit_map(http, SLEEP, chunked, chunk=3), chunked, 4),
            "burn": (submit_map(http, BURN, burns, chunk=2), burns, 3),
        }
        for job, _, _ in jobs.values():
            assert job["status"] == "pending"
            assert job["user"] == "alice"
        for name, (job, inputs, units) in jobs.items():
            final = wait_final(http, job["id"])
            assert final["status"] == "complete", (name, final)
            assert final["error"] is None
            assert final["progress"]["done"] == final["progress"]["total"] == units, name
            result = get_result(http, job["id"])
            assert result["status"] == "complete"
            assert result["result"] == inputs, name

        # Both workers did some of the work.
        done = {w["name"]: w["units_done"] for w in workers(http)}
        assert done["w0"] >= 1 and done["w1"] >= 1, done
        assert done["w0"] + done["w1"] == 8 + 4 + 3

        # The job list: {"jobs": [...], "next": cursor, "offset": N}, newest first,
        # filterable; one page holds them all here, so there is no next page.
        listing = http.get("/v1/jobs").json()
        assert set(listing) == {"jobs", "next", "offset"}
        assert listing["next"] is None
        ids = [j["id"] for j in listing["jobs"]]
        assert ids == [jobs[n][0]["id"] for n in ("burn", "chunked", "sleep")]
        assert all(j["status"] == "complete" for j in listing["jobs"])
        assert isinstance(listing["offset"], int)
        assert listing["offset"] == len(all_events(http))
        assert http.get("/v1/jobs", params={"status": "running"}).json()["jobs"] == []
        assert http.get("/v1/jobs", params={"user": "bob"}).json()["jobs"] == []
        mine = http.get("/v1/jobs", params={"user": "alice", "status": "complete"}).json()
        assert len(mine["jobs"]) == 3


def test_function_off_every_allow_list_waits_and_is_not_run(park_server, start_worker, tmp_path):
    plain = start_named_workers(park_server, start_worker, ["plain0", "plain1"])
    # os:mkdir would leave a visible trace if it ran.
    trace = tmp_path / "mkdir-ran"
    with client(park_server.url, user="alice") as http:
        mkdir_job = submit_map(http, "os:mkdir", [str(trace)])
        inputs: list[Any] = [{"a": 1, "b": [2, 3]}, [1, 2], "x", 3.5, None]
        dumps_job = submit_map(http, "json:dumps", inputs, chunk=2)
        time.sleep(1.0)  # the workers poll: neither job is granted, neither fails
        for job, function in ((mkdir_job, "os:mkdir"), (dumps_job, "json:dumps")):
            assert get_job(http, job["id"])["status"] == "pending"
            reasons = http.get(f"/v1/jobs/{job['id']}/explain").json()["reasons"]
            assert any(f"allows {function}" in r for r in reasons), reasons
        assert not trace.exists()

        # A worker whose allow list names json:* comes: the waiting json:dumps job runs on
        # it, and os:* still waits. The plain workers leave first, so only it can run units.
        for worker in plain:
            worker.stop()
            assert worker.proc.returncode == 0
        wait_for(lambda: workers(http) == [], timeout=10)
    start_named_workers(
        park_server, start_worker, ["json-ok"], env={"PARK_ALLOWED_FUNCTIONS": "json:*"}
    )
    with client(park_server.url, user="alice") as http:
        assert [w["name"] for w in workers(http)] == ["json-ok"]
        ok = wait_final(http, dumps_job["id"])
        assert ok["status"] == "complete", ok
        assert get_result(http, ok["id"])["result"] == [json.dumps(x) for x in inputs]
        assert get_job(http, mkdir_job["id"])["status"] == "pending"
        assert not trace.exists()


def test_cli_submit_wait_and_jobs_json(park_server, start_worker):
    start_worker(park_server, 1)
    url = park_server.url
    spec = {"function": SLEEP, "inputs": [0.03, 0.01, 0.02], "chunk": 2}
    done = park_cli("submit", "map", json.dumps(spec), "--server", url, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = done.stdout.split()[0]
    with client(url) as http:
        assert get_job(http, job_id)["status"] == "complete"
        assert get_result(http, job_id)["result"] == [0.03, 0.01, 0.02]

    listed = park_cli("jobs", "--server", url, "--json")
    assert listed.returncode == 0, listed.stderr
    answer = json.loads(listed.stdout)
    assert [(j["id"], j["status"]) for j in answer["jobs"]] == [(job_id, "complete")]
    assert answer["offset"] > 0

    # --wait reports a failed job (its unit failed all its attempts) through its exit code.
    bad = {"function": SLEEP, "inputs": ["not a number"]}
    failed = park_cli("submit", "map", json.dumps(bad), "--server", url, "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "could not convert string to float" in " ".join(failed.stdout.split())  # rich wraps

    # A spec the server refuses: exit code 2 and the server's reason, no job.
    invalid = park_cli("submit", "map", '{"function": "no colon", "inputs": []}', "--server", url)
    assert invalid.returncode == 2
    assert "spec.function" in invalid.stdout + invalid.stderr
    after = json.loads(park_cli("jobs", "--server", url, "--json").stdout)
    assert len(after["jobs"]) == 2


def test_cli_cancel_stops_a_long_job(park_server, start_worker, tmp_path):
    start_worker(park_server, 1)
    url = park_server.url
    with client(url) as http:
        job = submit_map(http, SLEEP, [0.5] * 40)
        wait_for(lambda: get_job(http, job["id"])["status"] == "running", timeout=20)

        cancelled = park_cli("cancel", job["id"], "--server", url)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert cancelled.stdout.split() == [job["id"], "cancelled"]
        view = get_job(http, job["id"])
        assert view["status"] == "cancelled"
        assert view["progress"]["done"] < view["progress"]["total"] == 40
        result = get_result(http, job["id"])
        assert result["status"] == "cancelled"
        assert result["result"] is None

        # The worker is freed: a new job runs to completion, and the cancelled one stays
        # cancelled although the worker reports the units it had in hand.
        quick = wait_final(http, submit_map(http, SLEEP, [0.01, 0.02])["id"], timeout=20)
        assert quick["status"] == "complete"
        assert get_job(http, job["id"])["status"] == "cancelled"
        records = all_events(http)
        cancel_at = next(e["offset"] for e in events_of(records, "job.cancelled"))
        late_grants = [
            e
            for e in events_of(records, "unit.granted")
            if e["job_id"] == job["id"] and e["offset"] > cancel_at
        ]
        assert late_grants == []
        assert not [e for e in events_of(records, "job.completed") if e["job_id"] == job["id"]]

    again = park_cli("cancel", job["id"], "--server", url)
    assert again.returncode == 2
    assert "already cancelled" in again.stdout + again.stderr
