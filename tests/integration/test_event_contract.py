"""The log carries exactly the published documents (docs/events.schema.json), and a
consumer that is not park can bill from it.

One real run on a Kafka topic (Tansu here): `park serve --log kafka://...` and a `park
worker` subprocess, driven over HTTP through a history that writes every event type it
can — a configured policy, budgets, paid and free jobs, a priority and a tag change, a
unit that fails, a heartbeat, a worker that leaves holding a lease, a cancel. Then every
event is read three ways (`GET /v1/events`, `GET /v1/events/stream`, the topic itself),
the three must agree, and each is validated with `jsonschema`; and
examples/billing_consumer.py, run on the topic, must find the totals `park ledger` shows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from httpx_sse import connect_sse

from park.events.published import event_types
from tests.events.contract_schema import check_event, record_validator
from tests.integration.helpers import all_events, client, get_job, submit_map, wait_final
from tests.kafka_fixture import kafka_url, unique_topic
from tests.support import ParkServer, free_port, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BURN = "park.builtins:burn"
SLEEP = "park.builtins:sleep"

# Types the run below cannot cause, each with the test whose real run writes it. Every
# SQLite log a test leaves under its tmp_path is checked against the published schema
# (tests/conftest.py), so those documents are validated there. A new event type goes here
# only when this run truly cannot write it; otherwise extend `workload` so that it does.
WRITTEN_ELSEWHERE: dict[str, str] = {
    # needs a worker silent for --worker-timeout (a kill -9); this run's workers leave
    "worker.expired": "tests/integration/test_unit_isolation.py::"
    "test_a_worker_killed_with_kill_9_expires_and_its_unit_runs_elsewhere",
    # need a real Slurm
    "pilot.submitted": "tests/batch/test_private_pilots.py::"
    "test_a_job_runs_on_its_own_pilot_which_is_gone_afterwards",
    "pilot.state_changed": "tests/batch/test_private_pilots.py::"
    "test_a_job_runs_on_its_own_pilot_which_is_gone_afterwards",
    "pool.decided": "tests/batch/test_pool_and_pbs.py::"
    "test_the_pool_grows_while_work_queues_and_shrinks_when_idle",
    # need a notifier with an SMTP server
    "notification.attempted": "tests/notify/test_notifier.py::"
    "test_smtp_down_then_up_delays_and_delivers_once",
    "notification.failed": "tests/notify/test_notifier.py::"
    "test_smtp_down_then_up_delays_and_delivers_once",
    "notification.sent": "tests/notify/test_notifier.py::"
    "test_smtp_down_then_up_delays_and_delivers_once",
    "notification.cancelled": "tests/notify/test_submission.py::"
    "test_users_list_and_cancel_only_their_own_pending_notifications",
    # needs idle workers registered before a job with several starts per unit
    "units.split": "tests/integration/test_backups.py::"
    "test_a_multistart_with_fewer_units_than_idle_workers_is_split_across_them",
}


@dataclass
class Run:
    server: ParkServer
    bootstrap: str
    topic: str


def _types(records: list[dict[str, Any]]) -> set[str]:
    return {r["event"]["type"] for r in records}


def workload(url: str, start_worker: Any) -> None:
    """A history that writes every event type; each step waits for what it needs."""
    with client(url, "bob") as bob, client(url, "alice") as alice:
        assert bob.put("/v1/ledger/bob/budget", json={"credits": 50.0}).status_code == 200
        paid = submit_map(bob, BURN, [0.2] * 3, priority="low")
        assert bob.patch(f"/v1/jobs/{paid['id']}", json={"priority": "normal"}).status_code == 200
        tagged = bob.patch(f"/v1/jobs/{paid['id']}", json={"tags": {"project": "survey"}})
        assert tagged.status_code == 200, tagged.text
        burn = submit_map(alice, BURN, [0.25] * 4, priority="normal")
        refused = submit_map(alice, SLEEP, ["not a number"])  # fails on every attempt
        free = submit_map(alice, SLEEP, [0.05] * 3)
        worker = start_worker()
        assert wait_final(bob, paid["id"], timeout=90)["status"] == "complete"
        assert wait_final(alice, burn["id"], timeout=90)["status"] == "complete"
        assert wait_final(alice, free["id"], timeout=90)["status"] == "complete"
        assert wait_final(alice, refused["id"], timeout=90)["status"] == "failed"

        # A long unit: its lease is extended, then its worker leaves holding it.
        long = submit_map(alice, SLEEP, [60])
        wait_for(lambda: get_job(alice, long["id"])["status"] == "running", timeout=60)
        wait_for(lambda: "lease.extended" in _types(all_events(alice)), timeout=60)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        wait_for(lambda: {"unit.lease_expired", "worker.left"} <= _types(all_events(alice)),
                 timeout=30)  # fmt: skip
        assert alice.post(f"/v1/jobs/{long['id']}/cancel").status_code == 200


@pytest.fixture(scope="module")
def kafka_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    work = tmp_path_factory.mktemp("contract")
    topic = unique_topic("park-contract")
    server = ParkServer(
        data_dir=work / "park-data", port=free_port(), workers=0, lease_seconds=3.0,
        # a policy other than the defaults, so the log records it (policy.configured)
        extra_args=["--log", kafka_url(kafka_bootstrap, topic), "--hot-jobs", "5000"],
    )  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []

    def start_worker() -> subprocess.Popen[bytes]:
        log = (work / f"worker-{len(workers)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "park", "worker", "--server", server.url, "--cpus", "1",
             "--name", "contract-worker"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        workers.append(proc)
        return proc

    server.start(timeout=60)
    try:
        workload(server.url, start_worker)
        yield Run(server, kafka_bootstrap, topic)
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        server.stop()


def stream_records(url: str, last: int) -> list[dict[str, Any]]:
    """GET /v1/events/stream from the start until offset `last`."""
    records: list[dict[str, Any]] = []
    with (
        httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=30.0)) as http,
        connect_sse(http, "GET", "/v1/events/stream", params={"after": 0}) as source,
    ):
        for message in source.iter_sse():
            if message.event != "event":
                continue
            record = json.loads(message.data)
            assert message.id == str(record["offset"])
            records.append(record)
            if record["offset"] >= last:
                break
    return records


async def topic_records(bootstrap: str, topic: str, last: int) -> list[dict[str, Any]]:
    """The topic's messages as records (park offset = Kafka offset + 1), read raw."""
    partition = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        for _ in range(200):
            if len(records) >= last:
                break
            batches = await consumer.getmany(partition, timeout_ms=500)
            for message in batches.get(partition, []):
                assert message.key is None and not message.headers
                records.append({"offset": message.offset + 1, "event": json.loads(message.value)})
    finally:
        await consumer.stop()
    return records


def test_types_written_elsewhere_name_real_tests() -> None:
    assert set(WRITTEN_ELSEWHERE) <= set(event_types()), "a type the union no longer has"
    for where in WRITTEN_ELSEWHERE.values():
        path, _, name = where.partition("::")
        assert f"def {name}(" in (ROOT / path).read_text(), f"no test {where}"


@pytest.mark.anyio
async def test_every_event_from_every_source_is_a_published_document(kafka_run: Run) -> None:
    with client(kafka_run.server.url) as http:
        from_api = all_events(http)
    last = from_api[-1]["offset"]
    from_stream = stream_records(kafka_run.server.url, last)
    from_topic = await topic_records(kafka_run.bootstrap, kafka_run.topic, last)

    # The three sources carry the same documents at the same offsets.
    assert [r["offset"] for r in from_api] == list(range(1, last + 1))
    assert from_stream == from_api
    assert from_topic == from_api

    for record in from_api:
        record_validator().validate(record)
        check_event(record["event"])

    seen = _types(from_api)
    unseen = sorted(set(event_types()) - seen - set(WRITTEN_ELSEWHERE))
    assert not unseen, (
        f"event types {unseen} were never written by the run in {__file__}: extend "
        "`workload` to cause them (or, if one cannot happen there, list it in "
        "WRITTEN_ELSEWHERE with the test that validates its documents)"
    )


def test_the_billing_consumer_finds_the_ledger_totals(kafka_run: Run) -> None:
    def consumer(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "billing_consumer.py"),
             "--bootstrap", kafka_run.bootstrap, "--topic", kafka_run.topic, *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    bill = json.loads(consumer("--json"))
    ledger_run = subprocess.run(
        [sys.executable, "-m", "park", "ledger", "--json", "--server", kafka_run.server.url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    ledger = json.loads(ledger_run.stdout)["users"]

    assert set(bill["users"]) == {"alice", "bob"} == set(ledger)
    for user, row in ledger.items():
        mine = bill["users"][user]
        assert mine["units"] == row["units"]
        assert mine["credits"] == pytest.approx(row["charged"], rel=1e-9, abs=1e-12)
        assert mine["core_seconds"] == pytest.approx(row["core_seconds"], rel=1e-9, abs=1e-12)
        assert mine["slot_seconds"] == pytest.approx(row["slot_seconds"], rel=1e-9, abs=1e-12)
    # real money changed hands: both paid for their burns at normal
    assert bill["users"]["bob"]["credits"] > 0.3
    assert bill["users"]["alice"]["credits"] > 0.5
    assert {d["priority"] for d in bill["days"] if d["user"] == "bob"} == {"normal"}

    # Day by day too: the server's usage per user and UTC day (GET /v1/ledger?from=&to=).
    days = sorted({d["day"] for d in bill["days"]})
    with client(kafka_run.server.url) as http:
        answer = http.get("/v1/ledger", params={"from": days[0], "to": days[-1]})
    assert answer.status_code == 200, answer.text
    mine_by_day: dict[tuple[str, str], list[float]] = {}
    for d in bill["days"]:
        row = mine_by_day.setdefault((d["day"], d["user"]), [0.0, 0.0, 0])
        row[0] += d["credits"]
        row[1] += d["core_seconds"]
        row[2] += d["units"]
    theirs = {(d["day"], d["user"]): [d["charged"], d["core_seconds"], d["units"]]
              for d in answer.json()["days"]}  # fmt: skip
    assert theirs == {key: [pytest.approx(v, rel=1e-9, abs=1e-12) for v in row]
                      for key, row in mine_by_day.items()}  # fmt: skip

    text = consumer()
    shown = subprocess.run(
        [sys.executable, "-m", "park", "ledger", "--server", kafka_run.server.url],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    print(f"{text}\n{shown.stdout}")  # the example output shown in docs/events.md
    totals = [line.split() for line in text.splitlines() if line.startswith("total")]
    assert [(t[1], float(t[-1])) for t in totals] == [
        (user, round(bill["users"][user]["credits"], 3)) for user in ("alice", "bob")
    ]
