"""The notice book: which notifications of finished jobs are owed, under way, sent.

Folded with the rest of the state (ParkState calls it), so every server knows what every
notifier did: a restarted or newly elected notifier, or a second one, starts from what
the log says was sent. A job's end creates its `each` notices, or puts it on its
addresses' digest lists; a notifier's first attempt at a digest takes every job waiting
on that list into it. The rules that make two notifiers safe are first-wins, like the
rest of the fold: only the next attempt number is accepted, the first outcome counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from park.events.schema import (
    NotificationAttempted,
    NotificationCancelled,
    NotificationFailed,
    NotificationSent,
    NotifyRequest,
)


def each_key(channel: str, job_id: str) -> str:
    return f"each/{channel}/{job_id}"


def digest_key(channel: str, target: str, slot: float) -> str:
    return f"digest/{channel}/{target}/{int(slot)}"


@dataclass(slots=True)
class Notice:
    """One message owed: an `each` notice for one job, or one digest for one target."""

    key: str
    channel: str
    target: str
    user: str
    job_ids: list[str]
    slot: float | None = None  # the digest time it answers (digests only)
    attempts: int = 0
    holder: str | None = None  # the notifier whose attempt is under way
    deadline: float | None = None  # ... until when it holds the notice
    retry_at: float | None = None
    last_error: str | None = None
    failures: int = 0
    sent_at: float | None = None
    cancelled: bool = False

    @property
    def digest(self) -> bool:
        return self.slot is not None

    @property
    def open(self) -> bool:
        return self.sent_at is None and not self.cancelled

    @property
    def status(self) -> str:
        if self.sent_at is not None:
            return "sent"
        if self.cancelled:
            return "cancelled"
        if self.holder is not None:
            return "sending"
        if self.failures:
            return "retrying"
        return "due"


@dataclass(slots=True)
class Waiting:
    """A job waiting for its next digest to one target."""

    job_id: str
    user: str
    ended_at: float


@dataclass(slots=True)
class NoticeBook:
    asked: dict[str, NotifyRequest] = field(default_factory=dict)  # job id -> request
    notices: dict[str, Notice] = field(default_factory=dict)  # key -> notice
    # Jobs ended and not yet in a digest, per (channel, target), in the order they ended.
    waiting: dict[tuple[str, str], list[Waiting]] = field(default_factory=dict)
    by_job: dict[str, list[str]] = field(default_factory=dict)  # job id -> notice keys
    cancelled_by: dict[str, str] = field(default_factory=dict)  # job id -> who cancelled it
    sent_total: Counter[str] = field(default_factory=Counter)  # per channel
    failed_total: Counter[str] = field(default_factory=Counter)  # attempts failed, per channel

    # -- from the job table's folds -----------------------------------------------------

    def job_submitted(self, job_id: str, request: NotifyRequest | None) -> None:
        if request is not None and request.when != "never":
            self.asked[job_id] = request

    def job_ended(self, job_id: str, user: str, at: float, cancelled_by: str | None) -> None:
        request = self.asked.pop(job_id, None)
        if request is None:
            return
        if cancelled_by is not None:
            self.cancelled_by[job_id] = cancelled_by
        for channel, target in (("email", request.email), ("webhook", request.webhook)):
            if target is None:
                continue
            if request.when == "each":
                key = each_key(channel, job_id)
                self.notices[key] = Notice(key, channel, target, user, [job_id])
                self.by_job.setdefault(job_id, []).append(key)
            else:
                self.waiting.setdefault((channel, target), []).append(Waiting(job_id, user, at))

    # -- the notifiers' own events ------------------------------------------------------

    def attempted(self, e: NotificationAttempted) -> None:
        notice = self.notices.get(e.key)
        if notice is None:
            if e.slot is None or e.attempt != 1:
                return
            notice = self._open_digest(e)
            if notice is None:
                return
        if not notice.open or e.attempt != notice.attempts + 1:
            return  # another notifier's attempt came first
        notice.attempts = e.attempt
        notice.holder = e.by
        notice.deadline = e.deadline

    def _open_digest(self, e: NotificationAttempted) -> Notice | None:
        """A digest takes the jobs it names that still wait for this target."""
        queue = self.waiting.get((e.channel, e.target), [])
        named = set(e.job_ids)
        taken = [w for w in queue if w.job_id in named]
        if not taken:
            return None
        rest = [w for w in queue if w.job_id not in named]
        if rest:
            self.waiting[(e.channel, e.target)] = rest
        else:
            self.waiting.pop((e.channel, e.target), None)
        notice = Notice(e.key, e.channel, e.target, e.user, [w.job_id for w in taken], e.slot)
        self.notices[e.key] = notice
        for w in taken:
            self.by_job.setdefault(w.job_id, []).append(e.key)
        return notice

    def sent(self, e: NotificationSent) -> None:
        notice = self.notices.get(e.key)
        # Any attempt's success counts (even one a later attempt overtook: it was sent).
        if notice is None or notice.sent_at is not None or e.attempt > notice.attempts:
            return
        notice.sent_at = e.at
        notice.holder = notice.deadline = notice.retry_at = None
        self.sent_total[notice.channel] += 1

    def failed(self, e: NotificationFailed) -> None:
        notice = self.notices.get(e.key)
        if notice is None or not notice.open or e.attempt != notice.attempts:
            return
        notice.holder = notice.deadline = None
        notice.retry_at = e.retry_at
        notice.last_error = e.error
        notice.failures += 1
        self.failed_total[notice.channel] += 1

    def cancelled(self, e: NotificationCancelled) -> None:
        jobs = set(e.job_ids)
        keys = set(e.keys)
        for job_id in jobs:
            keys.update(k for k in self.by_job.get(job_id, []) if k.startswith("each/"))
            self.asked.pop(job_id, None)
        for key in keys:
            notice = self.notices.get(key)
            if notice is not None and notice.open and notice.user == e.by:
                notice.cancelled = True
                notice.holder = notice.deadline = notice.retry_at = None
        if jobs:
            for target, queue in list(self.waiting.items()):
                rest = [w for w in queue if not (w.job_id in jobs and w.user == e.by)]
                if rest:
                    self.waiting[target] = rest
                else:
                    del self.waiting[target]

    # -- reads --------------------------------------------------------------------------

    def of_job(self, job_id: str) -> list[Notice]:
        return [self.notices[k] for k in self.by_job.get(job_id, [])]

    def pending(self) -> int:
        waiting = sum(len(q) for q in self.waiting.values())
        return waiting + sum(1 for n in self.notices.values() if n.open)
