"""The notifier against a real SMTP server (aiosmtpd) and a real HTTP receiver, on a real
service and SQLite log, with the clock passed in: a day passes in a second."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest

from park.commands import UnitReport
from park.events.sqlite import SqliteEventLog
from park.notify.notifier import Notifier, NotifySettings
from park.notify.plan import DigestSchedule
from park.notify.send import SmtpSettings
from park.scheduler.config import PolicyConfig
from park.service.engine import ParkService, ServiceConfig
from tests.notify.receivers import Hooks, Mailbox, body_of

pytestmark = pytest.mark.anyio

UTC = dt.UTC
# Thursday 2026-11-26 07:00 UTC; the digest goes at 08:00 UTC.
T0 = dt.datetime(2026, 11, 26, 7, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0
DAY = 24 * HOUR


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings(mailbox: Mailbox | None, **extra: Any) -> NotifySettings:
    return NotifySettings(
        smtp=SmtpSettings.from_url(mailbox.url + "?timeout=5") if mailbox else None,
        mail_from="park@lab.example",
        schedule=DigestSchedule(dt.time(8, 0), UTC),
        public_url="https://park.lab.example",
        webhook_secret=b"s3cret",
        **extra,
    )


async def started(tmp_path: Path, clock: Clock) -> ParkService:
    service = ParkService(SqliteEventLog(tmp_path / "events.sqlite3"), clock=clock)
    await service.start()
    return service


async def submit(service: ParkService, notify: Any, name: str = "", n: int = 1) -> str:
    tags = {"name": name} if name else {}
    spec = {"function": "park.builtins:sleep", "inputs": [0] * n}
    job = await service.submit(
        user="alice", kind="map", spec=spec, tags=tags, notify=notify, max_attempts=1
    )
    return job.id


async def finish(service: ParkService, job_id: str, *, ok: bool = True) -> None:
    """Run the job's units in-process: a worker leases them and reports."""
    worker = await service.register_worker(name="w", cpus=1)
    leased = [lu for lu in await service.lease(worker, 1000) if lu.job.id == job_id]
    reports = [
        UnitReport(lu.unit.id, ok, [0.5] * len(lu.unit.payload["items"]) if ok else None,
                   None if ok else "ValueError: bad input", cpu_seconds=2.0)
        for lu in leased
    ]  # fmt: skip
    await service.report(worker, reports)
    await service.remove_worker(worker)


async def test_each_sends_one_mail_per_finished_job_with_its_story(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    clock = Clock(T0)
    service = await started(tmp_path, clock)
    notifier = Notifier(service, settings(mailbox), clock=clock)
    try:
        good = await submit(service, {"email": "alice@lab.example", "when": "each"}, "calib")
        bad = await submit(service, {"email": "alice@lab.example", "when": "each"})
        gone = await submit(service, {"email": "bob@lab.example", "when": "each"})
        quiet = await submit(service, {"email": "carol@lab.example", "when": "never"})
        clock.now += 5
        await finish(service, good)
        await finish(service, bad, ok=False)
        await service.cancel(gone, by="alice")
        await service.cancel(quiet, by="alice")
        assert await notifier.tick() == 3
        assert await notifier.tick() == 0  # nothing twice
    finally:
        await service.stop()
    assert len(mailbox.messages) == 3
    (ok_mail,) = [m for m in mailbox.to("alice@lab.example") if good in m["Subject"]]
    assert ok_mail["Subject"] == f"park: job {good} calib complete"
    assert ok_mail["From"] == "park@lab.example"
    text = body_of(ok_mail)
    assert "(map): complete" in text and "1 results" in text
    assert f"https://park.lab.example/#/jobs/{good}" in text
    (bad_mail,) = [m for m in mailbox.to("alice@lab.example") if bad in m["Subject"]]
    assert "failed: unit" in body_of(bad_mail) and "ValueError: bad input" in body_of(bad_mail)
    (gone_mail,) = mailbox.to("bob@lab.example")
    assert "cancelled by alice" in body_of(gone_mail)
    assert not mailbox.to("carol@lab.example")
    assert len(mailbox.ids()) == 3  # three distinct Message-IDs


async def test_digest_groups_the_jobs_ended_since_the_last_one_per_address(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    clock = Clock(T0)
    service = await started(tmp_path, clock)
    notifier = Notifier(service, settings(mailbox), clock=clock)
    try:
        a1 = await submit(service, "alice@lab.example", "a1")  # a bare address: the digest
        a2 = await submit(service, {"email": "alice@lab.example"}, "a2")
        b1 = await submit(service, {"email": "bob@lab.example", "when": "digest"}, "b1")
        await finish(service, a1)
        await finish(service, b1)
        clock.now = T0 + 0.5 * HOUR  # 07:30: before the digest time
        await finish(service, a2, ok=False)
        assert await notifier.tick() == 0 and not mailbox.messages
        clock.now = T0 + HOUR + 1  # 08:00:01: the first digest
        assert await notifier.tick() == 2
        assert await notifier.tick() == 0
        (alice,) = mailbox.to("alice@lab.example")
        (bob,) = mailbox.to("bob@lab.example")
        assert alice["Subject"] == "park: 2 jobs ended (1 complete, 1 failed)"
        assert a1 in body_of(alice) and a2 in body_of(alice) and b1 not in body_of(alice)
        assert b1 in body_of(bob) and a1 not in body_of(bob)

        # The next day: only what ended since; bob has nothing new, so no mail for him.
        a3 = await submit(service, "alice@lab.example", "a3")
        clock.now = T0 + 5 * HOUR  # 12:00
        await finish(service, a3)
        assert await notifier.tick() == 0  # waits for tomorrow 08:00
        clock.now = T0 + DAY + HOUR + 1
        assert await notifier.tick() == 1
        second = mailbox.to("alice@lab.example")[1]
        assert second["Subject"] == "park: 1 job ended (1 complete)"
        assert a3 in body_of(second) and a1 not in body_of(second)
        assert len(mailbox.to("bob@lab.example")) == 1
        clock.now += 2 * DAY
        assert await notifier.tick() == 0
    finally:
        await service.stop()
    assert all(n == 1 for n in mailbox.ids().values())


async def test_smtp_down_then_up_delays_and_delivers_once(tmp_path: Path, mailbox: Mailbox) -> None:
    clock = Clock(T0)
    service = await started(tmp_path, clock)
    notifier = Notifier(service, settings(mailbox), clock=clock)
    try:
        job = await submit(service, {"email": "alice@lab.example", "when": "each"})
        await finish(service, job)
        mailbox.stop()
        for _ in range(3):  # each failure doubles the back-off: 1 s, 2 s, 4 s
            assert await notifier.tick() == 0
            assert await notifier.tick() == 0  # not before its back-off ran out
            (notice,) = service.state.notices.of_job(job)
            assert notice.status == "retrying" and notice.retry_at is not None
            clock.now = notice.retry_at
        assert notice.failures == 3 and notice.last_error
        assert service.state.notices.failed_total["email"] == 3
        mailbox.start()
        assert await notifier.tick() == 1
        assert await notifier.tick() == 0
        clock.now += DAY
        assert await notifier.tick() == 0
        assert service.state.notices.of_job(job)[0].status == "sent"
    finally:
        await service.stop()
    assert len(mailbox.messages) == 1


async def test_two_notifiers_on_one_log_send_each_notice_once(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    clock = Clock(T0)
    service = await started(tmp_path, clock)
    first = Notifier(service, settings(mailbox), clock=clock, name="first")
    second = Notifier(service, settings(mailbox), clock=clock, name="second")
    try:
        jobs = [await submit(service, {"email": f"u{i}@lab.example", "when": "each"})
                for i in range(4)]  # fmt: skip
        for job in jobs:
            await finish(service, job)
        a1 = await submit(service, "alice@lab.example")
        await finish(service, a1)
        clock.now = T0 + HOUR + 1
        import asyncio

        sent = await asyncio.gather(first.tick(), second.tick(), first.tick(), second.tick())
        assert sum(sent) == 5
    finally:
        await service.stop()
    assert len(mailbox.messages) == 5 and all(n == 1 for n in mailbox.ids().values())


async def test_webhooks_post_signed_json_per_job_and_per_digest(
    tmp_path: Path, hooks: Hooks
) -> None:
    clock = Clock(T0)
    service = await started(tmp_path, clock)
    notifier = Notifier(service, settings(None), clock=clock)  # no SMTP: webhooks only
    try:
        each = await submit(service, {"webhook": hooks.url("/each"), "when": "each"}, "w1")
        daily = [await submit(service, {"webhook": hooks.url("/daily")}) for _ in range(2)]
        mailed = await submit(service, {"email": "alice@lab.example", "when": "each"})
        for job in [each, *daily, mailed]:
            await finish(service, job)
        hooks.status = 503
        assert await notifier.tick() == 0  # the receiver is failing: retried later
        hooks.status = 200
        clock.now += 2
        assert await notifier.tick() == 1
        clock.now = T0 + HOUR + 1
        assert await notifier.tick() == 1
        assert await notifier.tick() == 0
        (mail_notice,) = service.state.notices.of_job(mailed)
        assert mail_notice.status == "due"  # held for an SMTP server this one lacks
    finally:
        await service.stop()
    (job_post, digest_post) = hooks.bodies()
    assert job_post["kind"] == "job.ended" and [j["id"] for j in job_post["jobs"]] == [each]
    assert job_post["jobs"][0]["status"] == "complete" and job_post["jobs"][0]["name"] == "w1"
    assert digest_post["kind"] == "digest"
    assert sorted(j["id"] for j in digest_post["jobs"]) == sorted(daily)
    for headers, body in hooks.posts:
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Park-Signature"] == expected
        assert headers["X-Park-Delivery"].startswith(("each/webhook/", "digest/webhook/"))


async def test_a_digest_names_jobs_that_left_memory_since_they_ended(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """With one finished job kept in memory, the older ones are archived before the
    digest goes: it still names each of them, with its story."""
    clock = Clock(T0)
    config = ServiceConfig(policy=PolicyConfig(hot_finished_jobs=1))
    service = ParkService(SqliteEventLog(tmp_path / "events.sqlite3"), clock=clock, config=config)
    await service.start()
    notifier = Notifier(service, settings(mailbox), clock=clock)
    try:
        jobs = [await submit(service, "alice@lab.example", f"a{i}") for i in range(3)]
        for job_id in jobs:
            await finish(service, job_id)
        assert [j for j in jobs if j in service.state.jobs] == jobs[-1:]
        clock.now = T0 + HOUR + 1
        assert await notifier.tick() == 1
        (alice,) = mailbox.to("alice@lab.example")
        assert alice["Subject"] == "park: 3 jobs ended (3 complete)"
        assert all(job_id in body_of(alice) for job_id in jobs)
    finally:
        await service.stop()


async def test_a_notifier_stopped_mid_send_hands_over_at_once(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """A clean stop (a leader stepping down) records the cut-off send, so the next
    notifier need not wait for the attempt's deadline; the message arrives once."""
    import asyncio

    clock = Clock(T0)
    service = await started(tmp_path, clock)
    first = Notifier(service, settings(mailbox), clock=clock, name="first")
    second = Notifier(service, settings(mailbox), clock=clock, name="second")
    try:
        job = await submit(service, {"email": "alice@lab.example", "when": "each"})
        await finish(service, job)
        mailbox.hold.set()
        running = asyncio.create_task(first.tick())
        await asyncio.to_thread(mailbox.holding.wait, 30)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        mailbox.drop_held()
        (notice,) = service.state.notices.of_job(job)
        assert notice.status == "retrying" and notice.retry_at == clock.now
        assert await second.tick() == 1
    finally:
        await service.stop()
    assert len(mailbox.messages) == 1
