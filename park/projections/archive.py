"""Hot and archived history: which finished jobs the projections keep in memory.

A lab runs park for years; memory, snapshots and start-up must grow with the work in
progress, not with history. So the fold keeps the active jobs and the recently finished
ones (the last `hot_finished_jobs` finished, and only those finished within
`hot_finished_seconds` of the newest event: whichever is fewer) and moves older finished
jobs out, into the state's `outbox`, from where the service's archive store takes them to
disk. Usage per user per day is kept the same way: today's in memory, closed days out.

Everything here is decided by the fold from the log alone: the limits are recorded on the
log (`policy.configured`), and the clock is the newest `at` folded. So every server and
every replay agrees on which job is where; a job's place in a listing (`seq`, the offset
of its submission) is the same in memory and in the archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from park.projections.state import JobView, ParkState

DAY = 86_400.0


def day_of(at: float) -> int:
    """Days since the epoch (UTC) of a time."""
    return int(at // DAY)


@dataclass(slots=True)
class DayUsage:
    """What one user's completed units used on one day (UTC)."""

    day: int
    user: str
    charged: float = 0.0
    core_seconds: float = 0.0
    units: int = 0


@dataclass(slots=True)
class ArchiveOutbox:
    """What left memory since the archive store last took it: finished jobs, closed days."""

    jobs: list[JobView] = field(default_factory=list)
    days: list[DayUsage] = field(default_factory=list)
    archived_jobs: int = 0  # how many jobs ever left memory (for reports)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.days)

    def take(self) -> tuple[list[JobView], list[DayUsage]]:
        jobs, days = self.jobs, self.days
        self.jobs, self.days = [], []
        return jobs, days


def advance_clock(state: ParkState, at: float) -> None:
    """The fold's clock moves on: a new day closes the previous days' usage."""
    state.clock = at
    today = day_of(at)
    if state.usage_today and next(iter(state.usage_today.values())).day < today:
        state.outbox.days.extend(state.usage_today.values())
        state.usage_today = {}


def count_usage(state: ParkState, user: str, charged: float, core_seconds: float) -> None:
    """A completed unit counts on the fold clock's day (never on a day already closed)."""
    usage = state.usage_today.get(user)
    if usage is None:
        usage = state.usage_today[user] = DayUsage(day_of(state.clock), user)
    usage.charged += charged
    usage.core_seconds += core_seconds
    usage.units += 1


def age_out(state: ParkState) -> None:
    """Move the oldest finished jobs out of memory while there are too many, or they
    finished too long before the newest event."""
    keep = state.policy.hot_finished_jobs
    oldest = state.clock - state.policy.hot_finished_seconds
    finished = state.hot_finished
    while finished:
        job = state.jobs.get(finished[0])
        if job is not None and len(finished) <= keep and (job.finished_at or 0.0) >= oldest:
            return
        finished.popleft()
        if job is not None:
            del state.jobs[job.id]
            state.outbox.jobs.append(job)
            state.outbox.archived_jobs += 1


def units_summary(job: JobView) -> dict[str, object]:
    """What a finished job's page shows of its units once they are dropped."""
    return {
        "count": job.units_total,
        "done": job.units_done,
        "attempts": job.attempts,
        "workers": dict(job.workers),
        "cpu_seconds": job.cpu_seconds,
    }


FINAL_STATUSES = frozenset({"complete", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class JobQuery:
    """One listing request over hot and archived jobs: newest first (by `seq`), from below
    the cursor `before`. Tags are (key, value) pairs, value None for "has the tag"; times
    bound `submitted_at` (since inclusive, until exclusive)."""

    user: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    before: int | None = None
    limit: int = 1000

    def matches(self, job: JobView) -> bool:
        if self.before is not None and job.seq >= self.before:
            return False
        if self.user is not None and job.user != self.user:
            return False
        if self.statuses and job.status.value not in self.statuses:
            return False
        if self.kinds and job.kind not in self.kinds:
            return False
        if self.since is not None and job.submitted_at < self.since:
            return False
        if self.until is not None and job.submitted_at >= self.until:
            return False
        return all(
            key in job.tags and (value is None or job.tags[key] == value)
            for key, value in self.tags
        )

    @property
    def archived_statuses(self) -> tuple[str, ...] | None:
        """The statuses to ask the archive for (it holds finished jobs only): () for any,
        None when none of the wanted ones can be there."""
        if not self.statuses:
            return ()
        final = tuple(s for s in self.statuses if s in FINAL_STATUSES)
        if not final:
            return None
        return () if set(final) == FINAL_STATUSES else final
