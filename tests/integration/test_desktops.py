"""Desktops that join the pool: an own-only desktop serves its owner alone (the owner
from its token), `explain` does not count it for others, and `--max-load` pauses it while
the machine is busy with other work and resumes it when the load falls."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from park.worker.desktop import runnable_processes
from tests.integration.helpers import events_of, get_job, submit_map, wait_final, workers
from tests.support import ParkServer, free_port, wait_for


def test_an_own_only_desktop_never_takes_another_users_unit(tmp_path: Path, start_worker) -> None:  # type: ignore[no-untyped-def]
    tokens = tmp_path / "tokens"
    tokens.write_text("t-ann ann\nt-bob bob\nw-ann ann worker\nt-admin root admin\n")
    server = ParkServer(data_dir=tmp_path / "data", port=free_port(),
                        extra_args=["--tokens", str(tokens)]).start(timeout=90)  # fmt: skip
    try:
        # With tokens, a desktop cannot claim another user as its owner.
        claim = subprocess.run(
            [sys.executable, "-m", "park", "worker", "--server", server.url, "--token", "w-ann",
             "--own-only", "--owner", "bob"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert claim.returncode != 0 and "403" in claim.stdout + claim.stderr
        start_worker(server, 1, "--own-only", "--token", "w-ann")  # the owner: from the token

        def http(token: str) -> httpx.Client:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.Client(base_url=server.url, headers=headers, timeout=10.0)

        bobs = submit_map(http("t-bob"), "park.builtins:sleep", [0.1, 0.1, 0.1])
        anns = submit_map(http("t-ann"), "park.builtins:sleep", [0.1, 0.1, 0.1])
        assert wait_final(http("t-ann"), anns["id"], timeout=60)["status"] == "complete"
        time.sleep(1.0)  # bob's units were queued first all along: still nobody's
        assert get_job(http("t-bob"), bobs["id"])["status"] == "pending"
        reasons = http("t-bob").get(f"/v1/jobs/{bobs['id']}/explain").json()["reasons"]
        assert any("none of the 1 connected worker(s) may run it" in r for r in reasons), reasons
        assert not any("busy" in r for r in reasons)  # the desktop is not counted for bob
        log = http("t-admin").get("/v1/events", params={"limit": 10_000}).json()["events"]
        granted = events_of(log, "unit.granted")
        assert granted and all(g["job_id"] == anns["id"] for g in granted)
        joined = events_of(log, "worker.joined")
        assert [(j["owner"], j["policy"]) for j in joined] == [("ann", "own-only")]
    finally:
        server.stop()


def test_max_load_pauses_while_others_load_the_machine_and_resumes(
    park_server: ParkServer,
    start_worker,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    # The machine is shared: set the limit above what others run now, then load it more.
    baseline = []
    for _ in range(10):
        baseline.append(runnable_processes())
        time.sleep(0.2)
    limit = math.ceil(max(baseline)) + 3
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(min(limit + 4, 24))
    ]
    try:
        start_worker(park_server, 1, "--max-load", str(limit))
        log = tmp_path / "worker-0.log"
        wait_for(lambda: log.exists() and "paused" in log.read_text(), timeout=60)
        # A slot's lease begun before the first load reading may still be polling: a gated
        # desktop polls for at most 1 s, so after that every slot has seen the pause.
        time.sleep(1.5)
        http = httpx.Client(base_url=park_server.url, timeout=10.0)
        job = submit_map(http, "park.builtins:sleep", [0.05, 0.05])
        time.sleep(3.0)
        assert get_job(http, job["id"])["progress"]["done"] == 0  # paused: took nothing
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert wait_final(http, job["id"], timeout=90)["status"] == "complete"
    assert "taking work again" in log.read_text()


def test_a_desktop_that_slept_lets_its_lease_go_and_rejoins(
    tmp_path: Path,
    start_worker,  # type: ignore[no-untyped-def]
) -> None:
    server = ParkServer(data_dir=tmp_path / "data", port=free_port(), lease_seconds=2.0)
    server.start(timeout=90)
    try:
        http = httpx.Client(base_url=server.url, headers={"X-Park-User": "ann"}, timeout=10.0)
        desktop = start_worker(server, 1, "--own-first", "--owner", "ann", "--name", "desk")
        first = submit_map(http, "park.builtins:sleep", [4.0])
        wait_for(lambda: [w for w in workers(http) if w["units_leased"]], timeout=60)
        os.killpg(desktop.proc.pid, signal.SIGSTOP)  # the lid closes
        try:
            wait_for(lambda: events_of(admin_log(http), "unit.lease_expired"), timeout=30)
            other = start_worker(server, 1, "--name", "other")
            assert wait_final(http, first["id"], timeout=60)["status"] == "complete"
            other.stop()
        finally:
            os.killpg(desktop.proc.pid, signal.SIGCONT)  # and opens again
        second = submit_map(http, "park.builtins:sleep", [0.05, 0.05])
        assert wait_final(http, second["id"], timeout=60)["status"] == "complete"
        log = admin_log(http)
        names = {e["worker_id"]: e["name"] for e in events_of(log, "worker.joined")}
        done = events_of(log, "unit.completed")
        assert [e["unit_id"] for e in done].count(f"{first['id']}/0") == 1  # once only
        assert {names[e["worker_id"]] for e in done if e["job_id"] == second["id"]} == {"desk"}
    finally:
        server.stop()


def admin_log(http: httpx.Client) -> list[dict[str, object]]:
    return http.get("/v1/events", params={"limit": 10_000}).json()["events"]  # type: ignore[no-any-return]
