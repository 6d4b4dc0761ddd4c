"""`park serve --smtp ...` as a real process against a real SMTP server (aiosmtpd): killed
with -9 while a mail is in flight, and in the middle of a digest, then restarted: every
mail arrives exactly once. The kill points are honest: the SMTP server holds the DATA
answer until the server is dead, and that message, never accepted, is dropped (as a real
SMTP server that never said 250 does not deliver)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from park.notify.render import message_id
from tests.notify.receivers import Mailbox, body_of
from tests.support import ParkServer, free_port, wait_for

SPEC = {"function": "park.builtins:sleep", "inputs": [60]}

pytestmark = pytest.mark.slow  # each starts `park serve` two or three times


def server_with_mail(
    tmp_path: Path, mailbox: Mailbox, *extra: str, timeout: float = 60
) -> ParkServer:
    """The SMTP timeout outlasts any hold in these tests: only the kill ends a held send."""
    return ParkServer(
        data_dir=tmp_path / "park-data",
        port=free_port(),
        extra_args=[
            "--smtp", f"{mailbox.url}?timeout={timeout}", "--mail-from", "park@lab.example",
            "--digest-timezone", "UTC", "--public-url", "https://park.lab.example", *extra,
        ],
    )  # fmt: skip


def submit_and_cancel(server: ParkServer, notify: Any) -> str:
    job = httpx.post(
        f"{server.url}/v1/jobs",
        json={"kind": "map", "spec": SPEC, "notify": notify, "tags": {"user": "alice"}},
    )
    assert job.status_code == 201, job.text
    job_id: str = job.json()["id"]
    assert httpx.post(f"{server.url}/v1/jobs/{job_id}/cancel").status_code == 200
    return job_id


def notices(server: ParkServer, job_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/v1/jobs/{job_id}/notifications")
    items: list[dict[str, Any]] = answer.json()["notifications"]
    return items


def attempts_on_log(server: ParkServer) -> Counter[str]:
    records = httpx.get(f"{server.url}/v1/events", params={"limit": 10_000}).json()["events"]
    return Counter(r["event"]["type"] for r in records if r["event"]["type"].startswith("notif"))


def test_kill_between_job_end_and_mail_sent_then_restart_sends_it_once(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.hold.set()  # the mail is in flight, not yet accepted, when the server dies
    server = server_with_mail(tmp_path, mailbox).start()
    try:
        job = submit_and_cancel(server, {"email": "alice@lab.example", "when": "each"})
        wait_for(mailbox.holding.is_set, timeout=30)
        listed = subprocess.run(
            [sys.executable, "-m", "park", "notify", "list", "--server", server.url,
             "--user", "alice", "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert '"status": "sending"' in listed.stdout, listed.stdout + listed.stderr
        server.kill()
        mailbox.drop_held()
        assert not mailbox.messages
        server.start()
        (mail,) = mailbox.wait_for(1)
        time.sleep(1.5)  # and nothing more comes
        assert len(mailbox.messages) == 1
        assert mail["Message-ID"] == message_id(f"each/email/{job}", "lab.example")
        assert f"https://park.lab.example/#/jobs/{job}" in body_of(mail)
        (notice,) = notices(server, job)
        assert notice["status"] == "sent" and notice["attempts"] == 2
        assert attempts_on_log(server) == Counter(
            {"notification.attempted": 2, "notification.sent": 1}
        )
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'park_notifications_sent_total{channel="email"} 1.0' in metrics
        assert "park_notifications_pending 0.0" in metrics
    finally:
        server.stop()


def test_kill_in_the_middle_of_a_digest_then_restart_sends_each_mail_once(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    quiet = ParkServer(data_dir=tmp_path / "park-data", port=free_port()).start()
    try:
        jobs = {f"u{i}@lab.example": submit_and_cancel(quiet, f"u{i}@lab.example")
                for i in range(3)}  # fmt: skip
    finally:
        quiet.stop()
    mailbox.hold_after = 1  # the first digest goes out, the second is in flight
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    server = server_with_mail(tmp_path, mailbox, "--digest-time", soon.strftime("%H:%M:%S"))
    server.start()
    try:
        wait_for(mailbox.holding.is_set, timeout=30)
        server.kill()
        mailbox.drop_held()
        assert len(mailbox.messages) == 1
        server.start()
        mailbox.wait_for(3)
        time.sleep(1.5)
        assert len(mailbox.messages) == 3
        for address, job in jobs.items():
            (digest,) = mailbox.to(address)
            assert digest["Subject"] == "park: 1 job ended (1 cancelled)"
            assert job in body_of(digest) and "cancelled by alice" in body_of(digest)
        assert len(mailbox.ids()) == 3
        assert attempts_on_log(server)["notification.sent"] == 3
    finally:
        server.stop()


def test_real_server_sends_the_digest_at_digest_time(tmp_path: Path, mailbox: Mailbox) -> None:
    """--digest-time HH:MM, the next minute (or the one after, so the job ends first)."""
    now = dt.datetime.now(dt.UTC)
    at = (now + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (at - now).total_seconds() < 15:
        at += dt.timedelta(minutes=1)
    server = server_with_mail(tmp_path, mailbox, "--digest-time", at.strftime("%H:%M"))
    server.start()
    try:
        job = submit_and_cancel(server, {"email": "alice@lab.example"})
        early = at.timestamp() - 1.0
        while time.time() < early:
            assert not mailbox.messages, "the digest came before its time"
            time.sleep(0.2)
        (digest,) = mailbox.wait_for(1, timeout=30)
        arrived = time.time()
        assert at.timestamp() <= arrived < at.timestamp() + 15
        assert job in body_of(digest)
        assert notices(server, job)[0]["status"] == "sent"
    finally:
        server.stop()
