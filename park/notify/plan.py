"""What is due now: the notifier's pure decision, from the folded notice book and a clock
reading passed in (so a test can pass a day in a second).

A notice is due when nobody holds it (or its holder's attempt ran past its deadline, or
the holder is a notifier known dead) and its back-off has run out. A digest to a target is
due once a daily digest time has passed since one of its waiting jobs ended and that
time's digest does not exist yet; it takes every job waiting for the target.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from park.projections.notices import NoticeBook, digest_key

# Back-off between attempts of one notice: doubling from FIRST_RETRY up to LAST_RETRY.
FIRST_RETRY = 1.0
LAST_RETRY = 300.0


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """The daily digest time, on the wall clock of `zone`."""

    at: dt.time = dt.time(8, 0)
    zone: dt.tzinfo | None = None  # None: the server's local zone

    @classmethod
    def parse(cls, at: str, zone: str | None) -> DigestSchedule:
        """`--digest-time HH:MM` and `--digest-timezone` (an IANA name such as
        Europe/Zurich); ValueError names the one at fault."""
        try:
            parts = [int(part) for part in at.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError(at)
            when = dt.time(parts[0], parts[1], parts[2] if len(parts) == 3 else 0)
        except ValueError:
            raise ValueError(f"--digest-time: HH:MM, not {at!r}") from None
        tz: dt.tzinfo | None = None
        if zone:
            try:
                tz = ZoneInfo(zone)
            except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
                raise ValueError(f"--digest-timezone: unknown time zone {zone!r}") from None
        return cls(when, tz)

    def last_slot(self, now: float) -> float:
        """The latest digest time at or before `now` (seconds since the epoch)."""
        local = dt.datetime.fromtimestamp(now, self.zone) if self.zone else None
        if local is None:
            local = dt.datetime.fromtimestamp(now).astimezone()
        day = local.date()
        for back in range(3):
            candidate = self._on(day - dt.timedelta(days=back), local.tzinfo)
            if candidate <= now:
                return candidate
        raise AssertionError("a digest time within three days")  # pragma: no cover

    def next_slot(self, now: float) -> float:
        slot = self.last_slot(now)
        tz = self.zone
        day = dt.datetime.fromtimestamp(slot, tz).date() if tz else dt.date.fromtimestamp(slot)
        for ahead in range(1, 4):
            candidate = self._on(day + dt.timedelta(days=ahead), tz)
            if candidate > now:
                return candidate
        raise AssertionError("a digest time within three days")  # pragma: no cover

    def _on(self, day: dt.date, tz: dt.tzinfo | None) -> float:
        if self.zone is None:  # the local zone, with its own daylight-saving rules
            return dt.datetime.combine(day, self.at).timestamp()
        return dt.datetime.combine(day, self.at, tzinfo=self.zone).timestamp()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to send now: notice `key`, attempt `attempt`. `job_ids` and `slot` are
    set for a digest's first attempt (they fix its content)."""

    key: str
    attempt: int
    channel: str
    target: str
    user: str
    job_ids: tuple[str, ...]
    slot: float | None = None


def retry_delay(failures: int) -> float:
    """Back-off after the `failures`-th failed attempt."""
    return float(min(LAST_RETRY, FIRST_RETRY * 2 ** max(0, failures - 1)))


def due(
    book: NoticeBook,
    now: float,
    schedule: DigestSchedule,
    *,
    channels: Collection[str],
    dead: Collection[str] = (),
) -> list[Delivery]:
    """Everything to send at `now` over `channels` (email only with an SMTP server);
    `dead`: notifiers whose attempts under way are known abandoned (an embedded server's
    earlier runs)."""
    out: list[Delivery] = []
    for notice in book.notices.values():
        if not notice.open or notice.channel not in channels:
            continue
        if notice.holder is not None:
            expired = notice.deadline is not None and notice.deadline < now
            if not expired and notice.holder not in dead:
                continue
        elif notice.retry_at is not None and notice.retry_at > now:
            continue
        out.append(
            Delivery(
                notice.key, notice.attempts + 1, notice.channel, notice.target,
                notice.user, tuple(notice.job_ids), notice.slot,
            )
        )  # fmt: skip
    slot = schedule.last_slot(now)
    for (channel, target), queue in book.waiting.items():
        if channel not in channels or not any(w.ended_at <= slot for w in queue):
            continue
        key = digest_key(channel, target, slot)
        if key in book.notices:
            continue  # this time's digest is out; the rest wait for the next one
        jobs = tuple(w.job_id for w in queue)
        out.append(Delivery(key, 1, channel, target, queue[0].user, jobs, slot))
    return out


def next_due(
    book: NoticeBook, now: float, schedule: DigestSchedule, *, channels: Collection[str]
) -> float | None:
    """When something not due at `now` next becomes due, if anything will by itself."""
    times: list[float] = []
    for notice in book.notices.values():
        if not notice.open or notice.channel not in channels:
            continue
        if notice.holder is not None and notice.deadline is not None:
            times.append(notice.deadline)
        elif notice.retry_at is not None:
            times.append(notice.retry_at)
    if any(channel in channels for channel, _ in book.waiting):
        times.append(schedule.next_slot(now))
    later = [t for t in times if t > now]
    return min(later) if later else None
