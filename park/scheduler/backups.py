"""Backup attempts: no job waits on one straggler while a worker idles.

A job whose remaining work is only units in flight is as slow as its slowest unit. When a
worker asks for work and the fair-share policy has nothing for it, it may instead run a
second attempt of a straggler: a unit of such a job (nothing of it queued) leased longer
than `backup_factor` times the median wall time of the job's finished units, and at
least `backup_min_seconds`. Of those, the one furthest beyond its job's typical time;
among equals (the units of one batch, granted together) the one granted last, since a
worker runs its batch in grant order and that one is the likeliest not begun.

The first report of either attempt counts, as for any unit reported twice; the other
attempt is let go, and its worker is told to stop it. A backup reserves no credit and
only the winning attempt is charged. A unit has at most one backup at a time.

Pure, like the grant policy: `now` is the request's time, so `park replay --verify`
re-makes every backup decision.
"""

from __future__ import annotations

from collections.abc import Iterator

from park.projections.state import JobView, ParkState, UnitView, WorkerView
from park.scheduler.policy import Grant, WorkRequest, grant, may_serve


def typical_seconds(job: JobView) -> float | None:
    """The median wall time of the job's finished units (None before any finished)."""
    walls = job.wall_times
    if not walls:
        return None
    mid = len(walls) // 2
    return walls[mid] if len(walls) % 2 else (walls[mid - 1] + walls[mid]) / 2.0


def straggler_after(state: ParkState, job: JobView) -> float | None:
    """How long a unit of this job may be leased before it counts as a straggler; None:
    no backups (the policy has none, or the job has no typical time yet)."""
    factor = state.policy.backup_factor
    typical = typical_seconds(job)
    if factor is None or typical is None:
        return None
    return max(state.policy.backup_min_seconds, factor * typical)


def _candidates(
    state: ParkState, worker: WorkerView | None
) -> Iterator[tuple[UnitView, JobView, float]]:
    """Units this worker (None: any worker) could back up, each with the time it becomes a
    straggler."""
    after: dict[str, float | None] = {}
    for unit_id in state.leased:
        unit = state.units[unit_id]
        if unit.backup_worker_id is not None or unit.granted_at is None:
            continue
        if worker is not None and (unit.worker_id == worker.id or worker.id in unit.failed_on):
            continue
        job = state.jobs[unit.job_id]
        if job.queue:
            continue  # it still has work queued: that is what runs first
        if job.id not in after:
            serves = worker is None or may_serve(worker, job)
            after[job.id] = straggler_after(state, job) if serves else None
        limit = after[job.id]
        if limit is not None:
            yield unit, job, unit.granted_at + limit


def backup(state: ParkState, request: WorkRequest) -> list[Grant]:
    """A backup attempt for this worker, or nothing (no straggler, or backups off)."""
    worker = state.workers.get(request.worker_id)
    if (
        state.policy.backup_factor is None
        or worker is None
        or not worker.active
        or request.max_units <= 0
        or not state.leased
    ):
        return []
    now = request.at
    best: tuple[float, int] | None = None
    chosen: UnitView | None = None
    for unit, job, due in _candidates(state, worker):
        if due >= now:
            continue
        if worker.until is not None and now + (job.unit_seconds or 0.0) > worker.until:
            continue  # a worker leaving before it could finish (a pilot's)
        key = (now - due, unit.granted_seq)
        if best is None or key > best:
            best, chosen = key, unit
    if chosen is None:
        return []
    job = state.jobs[chosen.job_id]
    return [Grant(chosen.id, job.id, chosen.priority, job.vpass, job.vpass, backup=True)]


def lease_grants(state: ParkState, request: WorkRequest) -> list[Grant]:
    """What a worker's request gets: queued units in fair-share order, else, when the
    policy has none for it, a backup attempt of a straggler."""
    return grant(state, request) or backup(state, request)


def next_straggler_at(state: ParkState, worker_id: str, now: float) -> float | None:
    """When, after `now`, a unit this worker could back up next becomes a straggler (a
    waiting lease request looks again then), or None."""
    worker = state.workers.get(worker_id)
    if state.policy.backup_factor is None or worker is None or not worker.active:
        return None
    return min((due for _, _, due in _candidates(state, worker) if due > now), default=None)


def first_straggler_at(state: ParkState) -> float | None:
    """When the first leased unit of any worker becomes (or became) a straggler, or None:
    a bound for every worker, which a scheduler waiting on asks for work cheaply looks at
    before it looks per worker (`backup`)."""
    if state.policy.backup_factor is None:
        return None
    return min((due for _, _, due in _candidates(state, None)), default=None)


__all__ = [
    "backup",
    "first_straggler_at",
    "lease_grants",
    "next_straggler_at",
    "straggler_after",
    "typical_seconds",
]
