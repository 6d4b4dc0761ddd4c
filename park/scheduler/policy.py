"""Who gets the next units: fair share by virtual time (stride scheduling).

Each runnable job has a pass in virtual time; a worker is granted a unit of the eligible
job with the lowest pass, and that job's pass then advances by 1 / weight, where

    weight = priority weight x user fair-share factor x age boost.

Over any window, grants therefore converge to the weights. A job that becomes runnable
enters at the current virtual time (one stride on under `park serve`, so a stream of
new jobs cannot keep an older one waiting), so idling earns no credit. Every weight is positive,
so no job starves: a runnable job j waits for at most

    sum over other runnable jobs k of (ceil(w_k / w_j) + 1)

grants to others (see docs/scheduling.md). `grant` is pure: it reads no clock (time comes
with the request, itself an event), mutates nothing, and returns the same grants for the
same state, which is what `park replay --verify` checks.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from park.domain import Priority, WorkerPolicy, function_allowed
from park.projections.state import JobView, ParkState, UnitView, WorkerView


@dataclass(frozen=True, slots=True)
class WorkRequest:
    """Up to `max_units` units, and (if given) about `max_seconds` of work by each job's
    mean unit time so far; a unit whose job has no such time yet is leased alone, so a
    long unit never holds short ones up in a worker's batch."""

    worker_id: str
    max_units: int
    at: float = 0.0
    max_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    unit_id: str
    job_id: str
    priority: Priority = Priority.FREE
    vstart: float = 0.0
    vpass: float = 0.0
    backup: bool = False  # a second attempt of a unit leased to another worker


def allows_job(worker: WorkerView, job: JobView) -> bool:
    """The worker's announced allow list has every function the job's units call (a
    worker that announced none is not routed by it: it refuses what it must itself)."""
    if worker.allowed is None:
        return True
    return all(function_allowed(worker.allowed, f) for f in job.functions)


def may_serve(worker: WorkerView, job: JobView) -> bool:
    if not allows_job(worker, job):
        return False
    if worker.policy is WorkerPolicy.OWN_ONLY:
        return job.user == worker.owner
    if worker.policy is WorkerPolicy.JOB:
        return job.id == worker.job_id
    return True


def effective_priority(state: ParkState, job: JobView, reserving: float = 0.0) -> Priority:
    """A user whose budget is spent runs paid work as `free` (never killed). `reserving`:
    credit this request has already reserved for the user, not yet on the state."""
    if job.priority is not Priority.FREE:
        left = state.budget_left(job.user)
        if left is not None and left - reserving <= 0:
            return Priority.FREE
    return job.priority


def fairshare_factor(state: ParkState, user: str, now: float) -> float:
    """2^(-U/S) as in Slurm's classic fair-share (U the user's share of all decayed usage,
    S the user's share of the pool, equal among users with runnable work), i.e. 2 to the
    minus usage over mean usage; the mean is taken as at least `usage_scale`, so on a young
    or quiet system a few credits of usage do not outweigh priorities. Floored."""
    policy = state.policy
    meter = state.usage.get(user)
    if meter is None:
        return 1.0
    users = max(1, len(state.runnable_by_user))
    mean = state.usage_total.at_time(now, policy.half_life) / users
    used = meter.at_time(now, policy.half_life) / max(policy.usage_scale, mean)
    return max(policy.fairshare_floor, float(2.0 ** (-used)))


def age_boost(state: ParkState, job: JobView, now: float) -> float:
    policy = state.policy
    waited = max(0.0, now - job.waiting_since - policy.age_grace)
    return min(policy.age_cap, 1.0 + waited / policy.age_scale)


def job_weight(
    state: ParkState, job: JobView, now: float, *, aged: bool = True, reserving: float = 0.0
) -> float:
    """`aged=False`: the job was just served (no age boost)."""
    priority = effective_priority(state, job, reserving)
    return (
        state.policy.weights[priority]
        * fairshare_factor(state, job.user, now)
        * (age_boost(state, job, now) if aged else 1.0)
    )


def _eligible(state: ParkState, worker: WorkerView) -> Iterator[tuple[int, JobView]]:
    """Runnable jobs this worker may serve, as (tier, job) in (tier, virtual-time) order.
    An own-first worker's owner's jobs form tier 0."""
    jobs = state.jobs
    if worker.policy is WorkerPolicy.JOB:
        if worker.job_id in state.runnable and allows_job(worker, jobs[worker.job_id]):
            yield 0, jobs[worker.job_id]
        return
    if worker.policy in (WorkerPolicy.OWN_ONLY, WorkerPolicy.OWN_FIRST):
        owner = worker.owner or ""
        own = sorted(
            (jobs[j] for j in state.runnable_by_user.get(owner, ()) if allows_job(worker, jobs[j])),
            key=lambda job: (job.vpass, job.submitted_at, job.id),
        )
        yield from ((0, job) for job in own)
        if worker.policy is WorkerPolicy.OWN_ONLY:
            return
        others: Iterable[JobView] = (
            jobs[key[2]]
            for key in state.queue_index
            if jobs[key[2]].user != owner and allows_job(worker, jobs[key[2]])
        )
        yield from ((1, job) for job in others)
        return
    yield from ((0, jobs[key[2]]) for key in state.queue_index if allows_job(worker, jobs[key[2]]))


def runs_better_elsewhere(
    state: ParkState, worker: WorkerView, job: JobView, unit: UnitView
) -> bool:
    """A unit that failed on this worker goes to another one if any active worker that
    may run it has not failed it yet (a retry on the same machine often fails alike)."""
    if worker.id not in unit.failed_on:
        return False
    return any(
        other.active
        and other.id != worker.id
        and other.id not in unit.failed_on
        and may_serve(other, job)
        for other in state.workers.values()
    )


def grant(state: ParkState, request: WorkRequest) -> list[Grant]:
    worker = state.workers.get(request.worker_id)
    if worker is None or not worker.active or request.max_units <= 0:
        return []
    now = request.at
    source = _eligible(state, worker)
    upcoming = next(source, None)
    # Jobs already granted in this request, with their advanced pass: merged with the
    # untouched jobs in order, so a multi-unit lease equals that many single grants.
    advanced: list[tuple[int, float, float, str]] = []
    taken: dict[str, int] = {}
    reserved: dict[str, float] = {}  # per user, by the grants made so far in this request
    grants: list[Grant] = []
    budget = request.max_seconds
    while len(grants) < request.max_units and (budget is None or budget > 0):
        if upcoming is not None:
            tier, job = upcoming
            key = (tier, job.vpass, job.submitted_at, job.id)
            if not advanced or key < advanced[0]:
                heapq.heappush(advanced, key)
                upcoming = next(source, None)
                continue
        if not advanced:
            break
        tier, vstart, _, job_id = advanced[0]
        job = state.jobs[job_id]
        n = taken.get(job_id, 0)
        if worker.until is not None and now + (job.unit_seconds or 0.0) > worker.until:
            # A worker that must leave by then (a pilot before its wall time) could not
            # finish this job's units: not this job.
            heapq.heappop(advanced)
            continue
        if runs_better_elsewhere(state, worker, job, state.units[job.queue[n]]):
            heapq.heappop(advanced)  # nothing more of this job for this worker now
            continue
        growth = state.policy.batch_growth
        if budget is not None and growth is not None and grants and n >= growth * job.timed_units:
            # A job's few timed units say little of the rest (heavy-tailed starts): its
            # share of a lease grows with them, so one lease cannot take most of the job.
            heapq.heappop(advanced)
            continue
        if budget is not None:
            estimate = job.unit_seconds
            if estimate is None:  # unknown: alone, or not in this lease
                if grants:
                    break
                budget = 0.0
            elif grants and estimate > budget + 1e-9:  # (rounding of the sums)
                break
            else:
                budget -= estimate
        heapq.heappop(advanced)
        # After its first unit here the job has just been served: no age boost, exactly
        # as if each unit were a request of its own.
        reserving = reserved.get(job.user, 0.0)
        vpass = vstart + 1.0 / job_weight(state, job, now, aged=n == 0, reserving=reserving)
        priority = effective_priority(state, job, reserving)
        reserved[job.user] = reserving + state.policy.price(priority) * state.policy.reserve_seconds
        grants.append(Grant(job.queue[n], job_id, priority, vstart, vpass))
        taken[job_id] = n + 1
        if n + 1 < len(job.queue):
            heapq.heappush(advanced, (tier, vpass, job.submitted_at, job_id))
    return grants


def wait_bound(weights: dict[str, float], job_id: str) -> int:
    """The most grants to other jobs that `job_id` can wait for, given each runnable
    job's (largest) weight and this job's (smallest) weight."""
    mine = weights[job_id]
    return sum(math.ceil(w / mine) + 1 for j, w in weights.items() if j != job_id)


__all__ = [
    "Grant",
    "WorkRequest",
    "age_boost",
    "allows_job",
    "effective_priority",
    "fairshare_factor",
    "grant",
    "job_weight",
    "may_serve",
    "runs_better_elsewhere",
    "wait_bound",
]
