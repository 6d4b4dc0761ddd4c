"""Notifications on Kafka (a real broker: Tansu here): two API servers and two scheduler
candidates with --smtp (the leader notifies), each a process. The leader stops in the
middle of the daily digest (one mail accepted, the next in flight, never answered); the
standby takes over, and each address gets its digest exactly once."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.kafka_fixture import kafka_url, unique_topic
from tests.notify.receivers import Mailbox, body_of
from tests.support import ParkServer, free_port, wait_for

pytestmark = pytest.mark.slow
SPEC = {"function": "park.builtins:sleep", "inputs": [60]}


def notify_args(mailbox: Mailbox, at: dt.datetime) -> list[str]:
    return [
        "--smtp", f"{mailbox.url}?timeout=60", "--mail-from", "park@lab.example",
        "--digest-time", at.strftime("%H:%M:%S"), "--digest-timezone", "UTC",
    ]  # fmt: skip


def attempts(url: str) -> list[dict[str, object]]:
    records = httpx.get(f"{url}/v1/events", params={"limit": 10_000}, timeout=10).json()
    return [r["event"] for r in records["events"] if r["event"]["type"] == "notification.attempted"]


def test_leader_change_in_the_middle_of_a_digest_each_mail_once(
    tmp_path: Path, kafka_bootstrap: str, mailbox: Mailbox
) -> None:
    log_url = kafka_url(kafka_bootstrap, unique_topic("park-notify"))
    servers = [
        ParkServer(
            data_dir=tmp_path / f"api-{i}",
            port=free_port(),
            extra_args=["--log", log_url, "--no-scheduler"],
        )
        for i in range(2)
    ]
    processes: dict[int, subprocess.Popen[bytes]] = {}
    logs = []
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: s.start(timeout=60), servers))
        first, second = servers
        jobs = {}
        for i in range(3):  # submitted through one server, cancelled through the other
            address = f"u{i}@lab.example"
            job = httpx.post(
                f"{first.url}/v1/jobs",
                json={"kind": "map", "spec": SPEC, "notify": address, "tags": {"user": "u"}},
            ).json()["id"]
            assert httpx.post(f"{second.url}/v1/jobs/{job}/cancel").status_code == 200
            jobs[address] = job
        # The digest time: just after the jobs ended; the leader sends once it leads.
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        mailbox.hold_after = 1  # the first digest goes out, the second is in flight

        def scheduler(i: int) -> subprocess.Popen[bytes]:
            logs.append((tmp_path / f"sched-{i}.log").open("ab"))
            proc = subprocess.Popen(
                [sys.executable, "-m", "park", "scheduler", "--log", log_url,
                 "--data-dir", str(tmp_path / f"sched-{i}"), *notify_args(mailbox, at)],
                stdout=logs[-1], stderr=subprocess.STDOUT,
            )  # fmt: skip
            processes[proc.pid] = proc
            return proc

        scheduler(0)  # leads, sends the first digest; the second is in flight
        wait_for(mailbox.holding.is_set, timeout=90)
        scheduler(1)  # the standby joins the election meanwhile
        wait_for(lambda: b"park scheduler:" in (tmp_path / "sched-1.log").read_bytes(), timeout=90)
        time.sleep(3.0)
        listed = httpx.get(f"{second.url}/v1/notifications", params={"all": True}).json()
        (holder,) = {n["holder"] for n in listed["notifications"] if n["status"] == "sending"}
        pid = int(holder.split("/")[0].split("-")[-2])  # host-pid-random/attempt-id
        assert pid in processes, holder
        # The leader stops (SIGTERM) while its send is in flight, never answered: it leaves
        # the election at once and records the send as cut off; the standby must finish.
        processes[pid].terminate()
        processes[pid].wait(timeout=30)
        mailbox.drop_held()
        assert len(mailbox.messages) == 1

        mailbox.wait_for(3, timeout=90)
        time.sleep(2.0)
        assert len(mailbox.messages) == 3
        for address, job in jobs.items():
            (digest,) = mailbox.to(address)
            assert job in body_of(digest)
        assert len(mailbox.ids()) == 3
        senders = {str(e["by"]).split("/")[0] for e in attempts(second.url)}
        assert len(senders) == 2  # the killed one and its successor
    finally:
        for server in servers:
            server.stop()
        for proc in processes.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
        for log in logs:
            log.close()
