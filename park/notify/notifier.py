"""The notifier: a consumer of the log that sends what is due and records what it did.

For each due notice it appends an attempt (the intent) BEFORE sending, then `sent` or
`failed` after. The fold accepts only one holder per attempt, so two notifiers (a second
process, a deposed leader that has not noticed yet) never both send one notice. A notice
whose attempt has no outcome (its notifier died) is taken over by the next notifier: at
once by a restarted embedded server (the attempt was its own previous life's), after the
attempt's deadline otherwise, and sent again with the same Message-ID (webhooks: the same
X-Park-Delivery and body). The one window left is a crash after the SMTP server accepted
a message and before `sent` was appended: that message is sent twice, with one
Message-ID. Failures are retried with back-off (plan.retry_delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from park.events.schema import (
    Event,
    NotificationAttempted,
    NotificationFailed,
    NotificationSent,
)
from park.notify import plan, render
from park.notify.plan import Delivery, DigestSchedule
from park.notify.send import Mailer, SmtpSettings, WebhookSender
from park.projections.notices import Notice
from park.projections.state import ParkState
from park.service.engine import ParkService
from park.service.history import find_job

log = logging.getLogger("park.notify")

POLL = 1.0  # the longest the notifier sleeps without looking (retries, deadlines)


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """The server's notification settings (`park serve --smtp ... --mail-from ...`)."""

    smtp: SmtpSettings | None = None
    mail_from: str = "park@localhost"
    schedule: DigestSchedule = field(default_factory=DigestSchedule)
    public_url: str = "http://127.0.0.1:8080"
    webhook_secret: bytes = b""
    timeout: float = 30.0  # webhooks; SMTP has its own in SmtpSettings

    @property
    def hold(self) -> float:
        """How long an attempt holds its notice before another notifier may take it over:
        longer than a send can take (aiosmtplib's timeout is per step)."""
        return 3 * max(self.timeout, self.smtp.timeout if self.smtp else 0.0)


def webhook_secret(path: str | Path | None, data_dir: Path) -> bytes:
    """The HMAC key for webhook signatures: the given file, else one made once in the
    data directory (0600). Several servers must share one: give them the same file."""
    target = Path(path) if path else data_dir / "webhook-secret"
    if not target.exists() and path is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    try:
        return target.read_text().strip().encode()
    except OSError as err:
        raise ValueError(f"--webhook-secret-file: {err}") from None


class Notifier:
    """Runs while `active()` (always with one server; the scheduler leader on Kafka).
    `takeover`: attempts left without outcome by notifiers that were at work before this
    one started are abandoned (true of an embedded server: one process per log)."""

    def __init__(
        self,
        service: ParkService,
        settings: NotifySettings,
        *,
        clock: Callable[[], float] = time.time,
        active: Callable[[], bool] = lambda: True,
        takeover: bool = False,
        name: str | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.clock = clock
        self.active = active
        self.takeover = takeover
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.mailer = Mailer(settings.smtp) if settings.smtp else None
        self.webhooks = WebhookSender(settings.webhook_secret, settings.timeout)
        self.letterhead = render.Letterhead(settings.mail_from, settings.public_url)
        self.channels = {"webhook", "email"} if self.mailer else {"webhook"}
        self._dead: set[str] | None = None

    async def run(self) -> None:
        while True:
            delay = POLL
            try:
                if self.active():
                    await self.tick()
                    later = plan.next_due(
                        self.service.state.notices,
                        self.clock(),
                        self.settings.schedule,
                        channels=self.channels,
                    )
                    if later is not None:
                        delay = min(POLL, max(0.05, later - self.clock()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier: a round failed; retrying")
            await self.service.wait_for_change(delay)

    async def tick(self) -> int:
        """Send everything due now; the number of messages delivered."""
        if self._dead is None:
            held = {n.holder for n in self.service.state.notices.notices.values() if n.holder}
            self._dead = held if self.takeover else set()
        due = plan.due(
            self.service.state.notices,
            self.clock(),
            self.settings.schedule,
            channels=self.channels,
            dead=self._dead,
        )
        delivered = 0
        for delivery in due:
            if not self.active():
                break
            delivered += await self.deliver(delivery)
        return delivered

    async def deliver(self, d: Delivery) -> int:
        now = self.clock()
        me = f"{self.name}/{secrets.token_hex(4)}"  # this attempt, even within one notifier
        intent = NotificationAttempted(
            at=now, key=d.key, attempt=d.attempt, by=me, deadline=now + self.settings.hold,
            channel=d.channel, target=d.target, user=d.user,
            job_ids=list(d.job_ids), slot=d.slot,
        )  # fmt: skip
        await self.service.record(lambda state: [intent])
        notice = self.service.state.notices.notices.get(d.key)
        if notice is None or notice.holder != me or notice.attempts != d.attempt:
            return 0  # another notifier holds it (or the jobs went into another digest)
        try:
            await self._send(notice)
        except asyncio.CancelledError:
            # Stopped cleanly mid-send (a leader stepping down, a server stopping): say so,
            # so the next notifier tries again at once instead of after the deadline.
            stopped = NotificationFailed(
                at=self.clock(), key=d.key, attempt=d.attempt, by=me,
                error="the notifier stopped during the send", retry_at=self.clock(),
            )  # fmt: skip
            with contextlib.suppress(Exception):
                await self.service.record(lambda state: [stopped])
            raise
        except Exception as err:
            error = f"{type(err).__name__}: {err}"[:500]
            log.warning("notifier: %s to %s failed: %s", notice.key, notice.target, error)
            retry_at = self.clock() + plan.retry_delay(notice.failures + 1)
            failed = NotificationFailed(
                at=self.clock(), key=d.key, attempt=d.attempt, by=me, error=error,
                retry_at=retry_at,
            )  # fmt: skip
            await self._record(failed)
            return 0
        await self._record(NotificationSent(at=self.clock(), key=d.key, attempt=d.attempt, by=me))
        return 1

    async def _record(self, event: Event) -> None:
        """Record an outcome; a log that is briefly away is tried again (the attempt's
        deadline is the limit: after it, another notifier may send again)."""
        for pause in (0.0, 0.5, 1.0, 2.0, 4.0):
            await asyncio.sleep(pause)
            with contextlib.suppress(Exception):
                await self.service.record(lambda state: [event])
                return
        await self.service.record(lambda state: [event])

    def _state_for(self, job_ids: list[str]) -> ParkState:
        """The state with these jobs in it, from memory or the archive: a digest may name
        jobs that have left memory since they ended."""
        state = self.service.state
        jobs = {i: job for i in job_ids if (job := find_job(state, self.service.archive, i))}
        return dataclasses.replace(state, jobs=jobs)

    async def _send(self, notice: Notice) -> None:
        state = self._state_for(notice.job_ids)
        if notice.channel == "email":
            assert self.mailer is not None
            message = render.email(
                state, key=notice.key, to=notice.target, job_ids=notice.job_ids,
                digest=notice.digest, at=self._composed_at(notice), letterhead=self.letterhead,
            )  # fmt: skip
            await self.mailer.send(message)
        else:
            payload = render.webhook_payload(
                state, key=notice.key, job_ids=notice.job_ids, digest=notice.digest,
                letterhead=self.letterhead,
            )  # fmt: skip
            await self.webhooks.post(notice.target, notice.key, payload)

    def _composed_at(self, notice: Notice) -> float:
        """When the message was due, from the log: the same on every attempt."""
        ends = [
            j.finished_at
            for j in self._state_for(notice.job_ids).jobs.values()
            if j is not None and j.finished_at is not None
        ]
        return max([*ends, notice.slot or 0.0]) or self.clock()
