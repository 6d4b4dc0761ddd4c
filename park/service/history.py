"""One view over hot and archived jobs: find a job by id, list jobs page by page.

A job is in memory (the projections) or in the archive, never both once the fold has
moved it; its `seq` (the offset of its submission) is its place in every listing wherever
it lives. A page is read from both at once, without yielding to the event loop, so a job
moving to the archive between two pages is neither repeated nor skipped: paging with the
cursor `before` returns each job exactly once while new jobs arrive and old ones age out.
"""

from __future__ import annotations

from park.projections.archive import DayUsage, JobQuery, day_of
from park.projections.state import JobView, ParkState
from park.service.archive_store import ArchiveStore


def find_job(state: ParkState, archive: ArchiveStore, job_id: str) -> JobView | None:
    job = state.jobs.get(job_id)
    if job is not None:
        return job
    for left in state.outbox.jobs:  # moved out, not yet stored (only while folding)
        if left.id == job_id:
            return left
    return archive.get(job_id)


def list_jobs(
    state: ParkState, archive: ArchiveStore, query: JobQuery
) -> tuple[list[JobView], int | None]:
    """A page of jobs, newest first, and the cursor of the next page (None: the last)."""
    hot: list[JobView] = []
    user, before = query.user, query.before
    for job in reversed(state.jobs.values()):  # in memory in submission order
        # (the cheap tests first: this loop sees every job in memory)
        if (
            (user is None or job.user == user)
            and (before is None or job.seq < before)
            and query.matches(job)
        ):
            hot.append(job)
            if len(hot) >= query.limit:
                break
    if len(hot) >= query.limit:  # only archived jobs newer than the page's last can count
        archived = archive.jobs(query, above=hot[-1].seq)
    else:
        archived = archive.jobs(query)
    page = sorted([*hot, *archived], key=lambda job: job.seq, reverse=True)
    unique: list[JobView] = []
    seen: set[str] = set()
    for job in page:
        if job.id not in seen and len(unique) < query.limit:
            seen.add(job.id)
            unique.append(job)
    more = len(unique) == query.limit
    return unique, (unique[-1].seq if more and unique else None)


def usage_by_day(
    state: ParkState, archive: ArchiveStore, first: float, last: float
) -> list[DayUsage]:
    """Usage per user per day from the day of `first` to the day of `last`: closed days
    from the archive, today's from memory."""
    lo, hi = day_of(first), day_of(last)
    days = archive.days(lo, hi)
    stored = {(d.day, d.user) for d in days}
    pending = [*state.outbox.days, *state.usage_today.values()]
    days += [d for d in pending if lo <= d.day <= hi and (d.day, d.user) not in stored]
    return sorted(days, key=lambda d: (d.day, d.user))
