"""park across processes on one Kafka topic (a real broker: Tansu here): two API servers,
a scheduler leader and a standby, three workers, each a separate process on 127.0.0.1.

Jobs go in through both API servers; the leader is killed with -9 mid-run; the standby
takes over within seconds, every job completes, no unit is counted twice (a backup
attempt that loses its race may still be recorded; the fold, as the ledger shows, takes
the first report), and both API servers show the same job table and the same ledger."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import (
    all_events,
    by_unit,
    client,
    events_of,
    get_result,
    planned_units,
    submit_map,
    wait_final,
    worker_named,
)
from tests.kafka_fixture import kafka_url, unique_topic
from tests.support import ParkServer, free_port, wait_for

SLEEP = "park.builtins:sleep"
BURN = "park.builtins:burn"
LEADING = re.compile(r"scheduler: (leading|no longer leading)")

pytestmark = pytest.mark.slow


@dataclass
class Scheduler:
    """A `park scheduler` process; its log tells whether it leads."""

    log_url: str
    data_dir: Path
    name: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def start(self) -> Scheduler:
        cmd = [sys.executable, "-m", "park", "scheduler", "--log", self.log_url,
               "--data-dir", str(self.data_dir)]  # fmt: skip
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        return self

    def leads(self) -> bool:
        if self.proc is None or self.proc.poll() is not None or not self.log_file.exists():
            return False
        said = LEADING.findall(self.log_file.read_text(errors="replace"))
        return bool(said) and said[-1] == "leading"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def log_url(kafka_bootstrap: str) -> str:
    return kafka_url(kafka_bootstrap, unique_topic("park-cluster"))


@pytest.fixture
def api_servers(tmp_path: Path, log_url: str) -> Iterator[list[ParkServer]]:
    servers = [
        ParkServer(
            data_dir=tmp_path / f"api-{i}",
            port=free_port(),
            extra_args=["--log", log_url, "--no-scheduler"],
        )
        for i in range(2)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def schedulers(tmp_path: Path, log_url: str) -> Iterator[list[Scheduler]]:
    started = [Scheduler(log_url, tmp_path / f"sched-{i}", f"sched-{i}") for i in range(2)]
    try:
        for s in started:
            s.start()
        yield started
    finally:
        for s in started:
            s.stop()


def the_leader(schedulers: list[Scheduler]) -> Scheduler:
    leading = [s for s in schedulers if s.leads()]
    assert len(leading) <= 1, "two schedulers say they lead"
    return leading[0] if leading else None  # type: ignore[return-value]


def jobs_and_ledger(url: str) -> tuple[int, Any, Any]:
    with client(url) as http:
        jobs = http.get("/v1/jobs").json()
        ledger = http.get("/v1/ledger").json()
    table = sorted(
        (j["id"], j["status"], j["progress"]["done"], j["progress"]["total"]) for j in jobs["jobs"]
    )
    for row in ledger["users"].values():
        row.pop("usage")  # decays with the clock: read at two moments, it differs
    return jobs["offset"], table, ledger


def test_two_api_servers_a_leader_killed_mid_run_and_three_workers(
    api_servers: list[ParkServer], schedulers: list[Scheduler], start_worker: Any, log_url: str
) -> None:
    a, b = api_servers
    wait_for(lambda: the_leader(schedulers) is not None, timeout=30)
    for i, server in enumerate([a, b, a]):
        start_worker(server, 1, "--name", f"w{i}")
    with client(a.url) as http_a, client(b.url) as http_b:
        wait_for(lambda: all(worker_named(http_a, f"w{i}") for i in range(3)), timeout=30)
        user = "cluster-user"
        http_a.headers["X-Park-User"] = http_b.headers["X-Park-User"] = user
        expected: dict[str, list[Any]] = {}
        for n in range(6):
            http = http_a if n % 2 == 0 else http_b
            inputs = [round(0.05 + 0.001 * (20 * n + i), 3) for i in range(20)]
            expected[submit_map(http, SLEEP, inputs)["id"]] = inputs
        burns = [0.05] * 10
        expected[submit_map(http_b, BURN, burns, priority="normal")["id"]] = burns

        # Kill the leader while units are running and work is left.
        def progress() -> int:
            listing = http_a.get("/v1/jobs").json()["jobs"]
            return sum(j["progress"]["done"] for j in listing)

        wait_for(lambda: progress() >= 15, timeout=60)
        leader = the_leader(schedulers)
        assert leader is not None
        standby = next(s for s in schedulers if s is not leader)
        leader.kill()
        killed_at = time.monotonic()
        wait_for(standby.leads, timeout=20, interval=0.05)
        takeover = time.monotonic() - killed_at
        print(f"the standby leads {takeover:.2f} s after the kill")
        assert takeover < 10, f"the standby took {takeover:.1f} s to lead"
        assert progress() < 7 * 20  # work was left when the leader died

        for job_id, inputs in expected.items():
            for http in (http_a, http_b):
                final = wait_final(http, job_id, timeout=90)
                assert final["status"] == "complete", final
                assert get_result(http, job_id)["result"] == inputs

        # One counting completion per planned unit: the first (docs/events.md, "First one
        # wins"). A later one can only be a backup race lost: two attempts of the unit
        # reported through the two API servers, each before it had folded the other's.
        records = all_events(http_a)
        units = planned_units(records)
        assert len(units) == len(set(units)) == 6 * 20 + len(burns)
        completions = by_unit(events_of(records, "unit.completed"))
        assert set(completions) == set(units)
        grants = by_unit(events_of(records, "unit.granted"))
        for unit_id, reports in completions.items():
            by = [e["worker_id"] for e in reports]
            assert len(by) == len(set(by)), reports  # no worker's report recorded twice
            if len(reports) > 1:
                assert any(g.get("backup") for g in grants[unit_id]), (reports, grants[unit_id])
                assert set(by) <= {g["worker_id"] for g in grants[unit_id]}
        counting = [reports[0] for reports in completions.values()]
        decisions = [e for e in events_of(records, "work.requested") if not e.get("pending")]
        assert decisions and all(e["request_id"] for e in decisions)

        # The ledger charges what the counting completions say (slot time at normal's
        # price of 1: a lost race is not charged), and the same through either server.
        cpu: Counter[str] = Counter()
        slot: Counter[str] = Counter()
        for event in counting:
            if event["job_id"] in expected and expected[event["job_id"]] is burns:
                cpu["normal"] += event["cpu_seconds"]
                slot["normal"] += event.get("slot_seconds", 0.0)
        assert slot["normal"] >= 0.9 * cpu["normal"] > 0  # burn units held their CPU
        wait_for(lambda: jobs_and_ledger(a.url) == jobs_and_ledger(b.url), timeout=20)
        _, table, ledger = jobs_and_ledger(a.url)
        assert len(table) == len(expected)
        row = ledger["users"][user]
        assert row["units"] == len(units)
        assert row["priorities"]["normal"]["charged"] == pytest.approx(slot["normal"], rel=1e-9)
        assert row["reserved"] == pytest.approx(0.0, abs=1e-9)

    # Every decision replays to the same grants, though other servers wrote between them.
    replayed = subprocess.run(
        [sys.executable, "-m", "park", "replay", "--log", log_url, "--verify"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert " 0 differ" in replayed.stdout


def test_a_command_through_one_server_is_seen_through_the_other(
    api_servers: list[ParkServer], schedulers: list[Scheduler]
) -> None:
    a, b = api_servers
    with client(a.url, user="ann") as http_a, client(b.url, user="ann") as http_b:
        job = submit_map(http_a, SLEEP, [0.0] * 3)
        # Cancelled through the other server at once: it catches up before saying "no job".
        answer = http_b.post(f"/v1/jobs/{job['id']}/cancel")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "cancelled"
        wait_for(lambda: http_a.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled")

    # A server stopped cleanly leaves a snapshot of its topic's state; restarted, it starts
    # from it and folds the tail.
    a.stop()
    (snapshot,) = (a.data_dir / "snapshots").glob("kafka-*/state-*.pickle")
    with client(b.url, user="ann") as http_b:
        later = submit_map(http_b, SLEEP, [0.0])
    a.start()
    with client(a.url, user="ann") as http_a:
        assert http_a.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
        wait_for(lambda: http_a.get(f"/v1/jobs/{later['id']}").status_code == 200)
    assert snapshot.exists()
