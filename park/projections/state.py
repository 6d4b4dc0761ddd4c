"""The read models, folded from the log: job table, unit/lease table, worker pool, ledger.

`ParkState.apply` is the one fold. It is pure and deterministic: the only time it sees is
the `at` of events, and a fact that conflicts with what was folded before (a second
completion of a unit, a grant of a unit already granted, anything about a finished job) is
ignored, so the first one wins however often an event is delivered. The four tables are
folded together and share one offset, so they are always consistent with each other.
Finished jobs leave memory for the archive as the fold decides (park.projections.archive).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from park.domain import (
    DEFAULT_MAX_ATTEMPTS,
    FINAL_JOB_STATUSES,
    JobStatus,
    Priority,
    UnitStatus,
    WorkerPolicy,
)
from park.events.schema import (
    BudgetSet,
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPriorityChanged,
    JobSubmitted,
    JobTagsChanged,
    LeaseExtended,
    NotificationAttempted,
    NotificationCancelled,
    NotificationFailed,
    NotificationSent,
    NotifyRequest,
    PilotStateChanged,
    PilotSubmitted,
    PolicyConfigured,
    UnitCompleted,
    UnitFailed,
    UnitGranted,
    UnitLeaseExpired,
    UnitsPlanned,
    UnitsSplit,
    WorkerExpired,
    WorkerJoined,
    WorkerLeft,
    WorkRequested,
)
from park.kinds import KINDS
from park.projections import invariants
from park.projections import pilots as pilot_fold
from park.projections.archive import (
    ArchiveOutbox,
    DayUsage,
    advance_clock,
    age_out,
    count_usage,
)
from park.projections.notices import NoticeBook
from park.projections.pilots import PilotView
from park.scheduler.config import PolicyConfig

RECENT_GRANTS = 1000
RECENT_FOLD_ERRORS = 100
# The fold checks the invariants of the units an event concerns after one event in this
# many (benchmarks/isolation.py); the property tests and `park replay --verify` check
# every table in full.
INVARIANT_SAMPLE = 8
# Completed units an active job keeps in the unit table (its page and `explain` show
# them); older ones leave it, counted in the job's totals, so a job's units in memory are
# those in flight plus these, however large its plan (a 2M-point scan).
RECENT_DONE_UNITS = 100
# How many of an active job's latest unit wall times its typical time is the median of:
# enough for a stable median, bounded so a job of millions of units holds no list of them.
TYPICAL_SAMPLE = 1001


@dataclass(frozen=True, slots=True)
class FoldError:
    """An event the fold left out, and why."""

    offset: int
    type: str
    message: str


def _units_of(event: Event) -> tuple[str, ...]:
    """The units an event concerns, whose invariants the fold checks after it."""
    if isinstance(event, LeaseExtended):
        return tuple(event.unit_ids)
    unit_id = getattr(event, "unit_id", None)
    return (unit_id,) if unit_id is not None else ()


@dataclass(slots=True)
class JobView:
    id: str
    user: str
    kind: str
    spec: dict[str, Any]
    priority: Priority
    tags: dict[str, str]
    notify: NotifyRequest | None
    submitted_at: float
    resources: dict[str, Any] | None = None
    status: JobStatus = JobStatus.PENDING
    started_at: float | None = None
    finished_at: float | None = None
    units_total: int = 0
    units_done: int = 0
    result: Any = None
    error: str | None = None
    kind_state: Any = None
    queue: deque[str] = field(default_factory=deque)
    # Its units in the unit table, in plan order: a dict (values unused) so that letting a
    # done unit go is O(1); a list's remove was O(job size) per completion (23 µs at
    # 100,000 units).
    unit_ids: dict[str, None] = field(default_factory=dict)
    done_units: deque[str] = field(default_factory=deque)  # kept completed units, oldest first
    # Virtual time: the job's pass in the fair-share order, and since when it has waited.
    vpass: float = 0.0
    waiting_since: float = 0.0
    # How long its units take (wall time, from completions that said): sizes leases.
    timed_units: int = 0
    timed_seconds: float = 0.0
    # The latest TYPICAL_SAMPLE wall times (in order of completion, and sorted): their
    # median is the job's typical unit time, against which a straggler is told
    # (park.scheduler.backups). Dropped when the job finishes.
    recent_walls: deque[float] = field(default_factory=deque)
    wall_times: list[float] = field(default_factory=list)
    charged: float = 0.0  # credits settled for its units
    # The job's place in every listing (the offset of its submission: never changes, in
    # memory or in the archive), and the summary of its units kept once they are dropped.
    seq: int = 0
    attempts: int = 0
    cpu_seconds: float = 0.0
    workers: dict[str, int] = field(default_factory=dict)
    # Its units' limits (None: the kind's default, capped by the policy) and the
    # functions they call (workers must allow them all).
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_unit_seconds: float | None = None
    functions: tuple[str, ...] = ()

    @property
    def unit_seconds(self) -> float | None:
        return self.timed_seconds / self.timed_units if self.timed_units else None

    @property
    def active(self) -> bool:
        return self.status not in FINAL_JOB_STATUSES


@dataclass(slots=True)
class UnitView:
    id: str
    job_id: str
    payload: dict[str, Any]
    status: UnitStatus = UnitStatus.QUEUED
    attempts: int = 0
    worker_id: str | None = None
    lease_deadline: float | None = None
    priority: Priority = Priority.FREE
    price: float = 0.0
    reserved: float = 0.0
    holders: list[str] = field(default_factory=list)
    # Attempts: `attempts` counts grants; `failures` the attempts that failed or ran out
    # of time (a lost lease is not the unit's fault and does not count), on which workers.
    failures: int = 0
    failed_on: list[str] = field(default_factory=list)
    last_error: str | None = None
    granted_at: float | None = None
    time_limit: float | None = None
    # The offset of its latest grant: orders the units of one batch (a worker runs them
    # in grant order, so the last granted is the likeliest not begun).
    granted_seq: int = 0
    # A backup attempt beside the current one (park.scheduler.backups): its worker, its
    # lease's deadline, since when; `backups` counts those started. The first report of
    # either attempt counts; the other is stopped on its worker.
    backup_worker_id: str | None = None
    backup_deadline: float | None = None
    backup_granted_at: float | None = None
    backups: int = 0


@dataclass(slots=True)
class WorkerView:
    id: str
    name: str
    cpus: int
    owner: str | None
    policy: WorkerPolicy
    job_id: str | None
    joined_at: float
    last_seen: float
    left_at: float | None = None
    registered_by: str | None = None
    units: set[str] = field(default_factory=set)
    units_done: int = 0
    pilot_id: str | None = None
    until: float | None = None
    allowed: tuple[str, ...] | None = None  # None: announced no allow list
    expired: bool = False  # left by falling silent, not by saying so

    @property
    def active(self) -> bool:
        return self.left_at is None


@dataclass(slots=True)
class LedgerEntry:
    """Credit and work of one user at one priority. `reserved` is what outstanding grants
    hold; `charged` is settled (slot time x price); `refunded` is what lost or cancelled
    grants gave back; `slot_seconds` is the time units held a worker's CPU, `core_seconds`
    the CPU time they reported using."""

    charged: float = 0.0
    reserved: float = 0.0
    refunded: float = 0.0
    core_seconds: float = 0.0
    units: int = 0
    slot_seconds: float = 0.0


@dataclass(slots=True)
class DecayedUsage:
    """Charged credit decaying with a half-life: stored as (value, time of value)."""

    value: float = 0.0
    at: float = 0.0

    def at_time(self, now: float, half_life: float) -> float:
        if self.value == 0.0:
            return 0.0
        return float(self.value * 2.0 ** (-(now - self.at) / half_life))

    def add(self, amount: float, now: float, half_life: float) -> None:
        self.value = self.at_time(max(now, self.at), half_life) + amount
        self.at = max(now, self.at)


def remember_wall_time(job: JobView, wall: float) -> None:
    """Keep the job's latest TYPICAL_SAMPLE wall times, sorted, for its median."""
    if len(job.recent_walls) >= TYPICAL_SAMPLE:
        oldest = job.recent_walls.popleft()
        del job.wall_times[bisect_left(job.wall_times, oldest)]
    job.recent_walls.append(wall)
    insort(job.wall_times, wall)


def queue_key(job: JobView) -> tuple[float, float, str]:
    """The fair-share order: virtual pass, then age, then id (deterministic ties)."""
    return (job.vpass, job.submitted_at, job.id)


@dataclass(slots=True)
class ParkState:
    offset: int = 0
    jobs: dict[str, JobView] = field(default_factory=dict)
    units: dict[str, UnitView] = field(default_factory=dict)
    workers: dict[str, WorkerView] = field(default_factory=dict)
    ledger: dict[tuple[str, Priority], LedgerEntry] = field(default_factory=dict)
    # Jobs with queued units, and units under lease: the scheduler's and the lease
    # reaper's working sets, kept so neither scans every unit.
    runnable: set[str] = field(default_factory=set)
    leased: dict[str, float] = field(default_factory=dict)
    # Backup attempts' leases (unit -> deadline), beside the units' current ones.
    backup_leased: dict[str, float] = field(default_factory=dict)
    # The scheduler's inputs: its configuration, the runnable jobs in virtual-time order
    # (and per user, for workers that serve their owner), the virtual time, decayed usage,
    # budgets, and the latest grants (for current shares and start estimates).
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    vtime: float = 0.0
    queue_index: SortedList = field(default_factory=SortedList)
    runnable_by_user: dict[str, set[str]] = field(default_factory=dict)
    usage: dict[str, DecayedUsage] = field(default_factory=dict)
    usage_total: DecayedUsage = field(default_factory=DecayedUsage)
    budgets: dict[str, float] = field(default_factory=dict)
    recent_grants: deque[tuple[str, float]] = field(
        default_factory=lambda: deque(maxlen=RECENT_GRANTS)
    )
    # Batch pilots (park/projections/pilots.py), by pilot id.
    pilots: dict[str, PilotView] = field(default_factory=dict)
    # Notifications of finished jobs: owed, under way, sent (park/notify sends them).
    notices: NoticeBook = field(default_factory=NoticeBook)
    # Active jobs per user (for the per-user limits).
    active_jobs_of: dict[str, int] = field(default_factory=dict)
    # Events the fold could not apply: how many, and the latest (for /metrics, the log,
    # `park replay`).
    fold_errors: int = 0
    recent_fold_errors: deque[FoldError] = field(
        default_factory=lambda: deque(maxlen=RECENT_FOLD_ERRORS)
    )
    # History (park.projections.archive): the latest `at` folded, the finished jobs still
    # in memory (in finishing order), today's usage per user, and what left memory since
    # the archive store last took it.
    clock: float = 0.0
    hot_finished: deque[str] = field(default_factory=deque)
    usage_today: dict[str, DayUsage] = field(default_factory=dict)
    outbox: ArchiveOutbox = field(default_factory=ArchiveOutbox)

    def apply(self, offset: int, event: Event) -> None:
        if offset <= self.offset:
            return  # already folded: a replayed or re-delivered event
        self.offset = offset
        before = (self.clock, self.usage_today, len(self.outbox.days))
        if event.at > self.clock:
            advance_clock(self, event.at)
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            # A fact the fold cannot take (the command layer should have refused it) is
            # left out, alike on every replay, rather than stopping every future start-up;
            # but loudly. Each handler checks, and runs the kind's fold, before it changes
            # any table, so a refused event leaves the state as it was.
            try:
                handler(self, event)
            except Exception as err:
                self._fold_failed(offset, event, f"{type(err).__name__}: {err}")
                self.clock, self.usage_today, closed = before  # nor does time move on
                del self.outbox.days[closed:]
                return
            if offset % INVARIANT_SAMPLE == 0:  # sampled by offset: alike on every replay
                for unit_id in _units_of(event):
                    problem = invariants.unit_problem(self, unit_id)
                    if problem is not None:
                        self._fold_failed(offset, event, f"invariant broken: {problem}")
        if self.hot_finished:
            age_out(self)

    def _fold_failed(self, offset: int, event: Event, message: str) -> None:
        self.fold_errors += 1
        self.recent_fold_errors.append(FoldError(offset, event.type, message))

    def check(self) -> list[str]:
        """Every inconsistency between the tables (park.projections.invariants)."""
        return invariants.check(self)

    def active_jobs(self) -> list[JobView]:
        return [job for job in self.jobs.values() if job.active]

    def charged_total(self, user: str) -> float:
        return sum(e.charged for (u, _), e in self.ledger.items() if u == user)

    def budget_left(self, user: str) -> float | None:
        budget = self.budgets.get(user)
        if budget is None:
            return None
        reserved = sum(e.reserved for (u, _), e in self.ledger.items() if u == user)
        return budget - self.charged_total(user) - reserved

    def _set_runnable(self, job: JobView, at: float) -> None:
        """Keep the runnable set and the virtual-time index in step with the job's queue.
        A job that becomes runnable enters at the current virtual time (one stride on, if
        the policy says so): time idle earns no credit."""
        runnable = bool(job.queue) and job.active
        if runnable and job.id not in self.runnable:
            entry = self.vtime
            if self.policy.entry_after_stride:
                entry += 1.0 / self.policy.weights[job.priority]
            job.vpass = max(job.vpass, entry)
            job.waiting_since = at
            self.runnable.add(job.id)
            self.queue_index.add(queue_key(job))
            self.runnable_by_user.setdefault(job.user, set()).add(job.id)
        elif not runnable and job.id in self.runnable:
            self.runnable.discard(job.id)
            self.queue_index.remove(queue_key(job))
            mine = self.runnable_by_user[job.user]
            mine.discard(job.id)
            if not mine:
                del self.runnable_by_user[job.user]

    def ledger_entry(self, user: str, priority: Priority) -> LedgerEntry:
        key = (user, priority)
        entry = self.ledger.get(key)
        if entry is None:
            entry = self.ledger[key] = LedgerEntry()
        return entry

    # -- folds --------------------------------------------------------------------------

    def _job_submitted(self, e: JobSubmitted) -> None:
        if e.job_id in self.jobs or e.kind not in KINDS:
            return
        self.jobs[e.job_id] = JobView(
            id=e.job_id,
            user=e.user,
            kind=e.kind,
            spec=e.spec,
            priority=e.priority,
            tags=dict(e.tags),
            notify=e.notify_request,
            submitted_at=e.at,
            resources=e.resources,
            kind_state=KINDS[e.kind].start(e.spec),
            seq=self.offset,
            max_attempts=e.max_attempts or DEFAULT_MAX_ATTEMPTS,
            max_unit_seconds=e.max_unit_seconds,
            functions=tuple(KINDS[e.kind].job_functions(e.spec)),
        )
        self.notices.job_submitted(e.job_id, e.notify_request)
        self.active_jobs_of[e.user] = self.active_jobs_of.get(e.user, 0) + 1

    def _units_planned(self, e: UnitsPlanned) -> None:
        job = self.jobs.get(e.job_id)
        if job is None or not job.active:
            return
        units, total = self.units, job.units_total  # none planned before: nothing to look up
        fresh = [
            u
            for u in e.units
            if u.unit_id not in units and not (total and _planned(job, u.unit_id))
        ]
        KINDS[job.kind].planned(job.kind_state, [u.payload for u in fresh])
        for u in fresh:
            self.units[u.unit_id] = UnitView(id=u.unit_id, job_id=job.id, payload=u.payload)
            job.queue.append(u.unit_id)
            job.unit_ids[u.unit_id] = None
        job.units_total += len(fresh)
        self._set_runnable(job, e.at)

    def _units_split(self, e: UnitsSplit) -> None:
        """A queued unit, never granted, replaced in its job's queue by smaller ones (the
        same work: the kind's state does not change)."""
        job = self.jobs.get(e.job_id)
        unit = self.units.get(e.unit_id)
        if (
            job is None
            or not job.active
            or unit is None
            or unit.job_id != job.id
            or unit.status is not UnitStatus.QUEUED
            or unit.attempts
            or not e.units
            or any(u.unit_id in self.units for u in e.units)
        ):
            return
        at = job.queue.index(unit.id)
        del job.queue[at]
        for k, u in enumerate(e.units):
            self.units[u.unit_id] = UnitView(id=u.unit_id, job_id=job.id, payload=u.payload)
            job.queue.insert(at + k, u.unit_id)
            job.unit_ids[u.unit_id] = None
        del self.units[unit.id]
        del job.unit_ids[unit.id]
        job.units_total += len(e.units) - 1

    def _priority_changed(self, e: JobPriorityChanged) -> None:
        job = self.jobs.get(e.job_id)
        if job is not None and job.active:
            job.priority = e.priority

    def _tags_changed(self, e: JobTagsChanged) -> None:
        job = self.jobs.get(e.job_id)
        if job is None:
            return
        for key, value in e.tags.items():
            if key == "user":
                continue
            if value is None:
                job.tags.pop(key, None)
            else:
                job.tags[key] = value

    def _job_cancelled(self, e: JobCancelled) -> None:
        job = self.jobs.get(e.job_id)
        if job is not None and job.active:
            self._finish(job, JobStatus.CANCELLED, e.at, cancelled_by=e.by)

    def _job_completed(self, e: JobCompleted) -> None:
        job = self.jobs.get(e.job_id)
        if job is not None and job.active:
            job.result = e.result
            self._finish(job, JobStatus.COMPLETE, e.at)

    def _job_failed(self, e: JobFailed) -> None:
        job = self.jobs.get(e.job_id)
        if job is not None and job.active:
            job.error = e.error
            self._finish(job, JobStatus.FAILED, e.at)

    def _finish(
        self, job: JobView, status: JobStatus, at: float, cancelled_by: str | None = None
    ) -> None:
        """A finished job keeps its view and result; its units and kind state are dropped,
        outstanding reservations refunded."""
        left = self.active_jobs_of.get(job.user, 1) - 1
        if left > 0:
            self.active_jobs_of[job.user] = left
        else:
            self.active_jobs_of.pop(job.user, None)
        job.status = status
        job.finished_at = at
        for unit_id in job.unit_ids:
            unit = self.units.pop(unit_id, None)
            if unit is not None and unit.status is UnitStatus.LEASED:
                self._drop_backup(unit)
                self._release_lease(unit, refund=True)
        job.unit_ids = {}
        job.done_units.clear()
        job.queue.clear()
        job.kind_state = None
        job.wall_times = []
        job.recent_walls = deque()
        self._set_runnable(job, at)
        self.notices.job_ended(job.id, job.user, at, cancelled_by)
        self.hot_finished.append(job.id)

    def _worker_joined(self, e: WorkerJoined) -> None:
        if e.worker_id in self.workers:
            return
        self.workers[e.worker_id] = WorkerView(
            id=e.worker_id,
            name=e.name,
            cpus=e.cpus,
            owner=e.owner,
            policy=e.policy,
            job_id=e.job_id,
            joined_at=e.at,
            last_seen=e.at,
            registered_by=e.registered_by,
            pilot_id=e.pilot_id,
            until=e.until,
            allowed=tuple(e.allowed) if e.allowed is not None else None,
        )
        if e.pilot_id is not None:
            pilot_fold.worker_joined_pilot(self.pilots, e.pilot_id, e.worker_id, e.at)

    def _worker_left(self, e: WorkerLeft) -> None:
        worker = self.workers.get(e.worker_id)
        if worker is not None and worker.active:
            worker.left_at = e.at

    def _worker_expired(self, e: WorkerExpired) -> None:
        worker = self.workers.get(e.worker_id)
        if worker is not None and worker.active:
            worker.left_at = e.at
            worker.expired = True

    def _work_requested(self, e: WorkRequested) -> None:
        worker = self.workers.get(e.worker_id)
        if worker is not None:
            worker.last_seen = e.at

    def accepts_grant(self, e: UnitGranted) -> bool:
        """Whether folding this grant would lease the unit: only a queued unit can be
        granted, so of two grants of one unit (two scheduler leaders racing) the first
        wins. An API server hands a worker only the grants this accepts."""
        unit = self.units.get(e.unit_id)
        worker = self.workers.get(e.worker_id)
        if unit is None or worker is None or not worker.active:
            return False
        if e.backup:  # beside a running attempt of another worker, and only one
            return (
                unit.status is UnitStatus.LEASED
                and unit.backup_worker_id is None
                and unit.worker_id != e.worker_id
            )
        return unit.status is UnitStatus.QUEUED

    def _unit_granted(self, e: UnitGranted) -> None:
        if not self.accepts_grant(e):
            return
        unit = self.units[e.unit_id]
        worker = self.workers[e.worker_id]
        job = self.jobs[unit.job_id]
        unit.granted_seq = self.offset
        if e.backup:
            # No fair-share pass, no reservation: the worker had nothing else to run,
            # and only the attempt that reports first is charged.
            unit.attempts += 1
            job.attempts += 1
            unit.backups += 1
            unit.holders.append(e.worker_id)
            unit.backup_worker_id = e.worker_id
            unit.backup_deadline = e.lease_deadline
            unit.backup_granted_at = e.at
            worker.units.add(unit.id)
            self.backup_leased[unit.id] = e.lease_deadline
            return
        unit.status = UnitStatus.LEASED
        unit.attempts += 1
        job.attempts += 1
        unit.holders.append(e.worker_id)
        unit.worker_id = e.worker_id
        unit.lease_deadline = e.lease_deadline
        unit.priority = e.priority
        unit.price = e.price
        unit.reserved = e.reserved
        unit.granted_at = e.at
        unit.time_limit = e.time_limit
        self.queue_index.remove(queue_key(job))
        if job.queue and job.queue[0] == unit.id:
            job.queue.popleft()
        else:
            job.queue.remove(unit.id)
        job.vpass = max(job.vpass, e.vpass)
        job.waiting_since = e.at
        self.vtime = max(self.vtime, e.vstart)
        self.queue_index.add(queue_key(job))
        self._set_runnable(job, e.at)
        self.recent_grants.append((job.id, e.at))
        if job.status is JobStatus.PENDING:
            job.status = JobStatus.RUNNING
            job.started_at = e.at
        worker.units.add(unit.id)
        self.leased[unit.id] = e.lease_deadline
        entry = self.ledger_entry(job.user, unit.priority)
        entry.reserved += e.reserved

    def _lease_extended(self, e: LeaseExtended) -> None:
        worker = self.workers.get(e.worker_id)
        if worker is not None:
            worker.last_seen = max(worker.last_seen, e.at)
        for unit_id in e.unit_ids:
            unit = self.units.get(unit_id)
            if unit is None or unit.status is not UnitStatus.LEASED:
                continue
            if (
                unit.worker_id == e.worker_id
                and unit.lease_deadline is not None
                and e.lease_deadline > unit.lease_deadline
            ):
                unit.lease_deadline = e.lease_deadline
                self.leased[unit_id] = e.lease_deadline
            elif (
                unit.backup_worker_id == e.worker_id
                and unit.backup_deadline is not None
                and e.lease_deadline > unit.backup_deadline
            ):
                unit.backup_deadline = e.lease_deadline
                self.backup_leased[unit_id] = e.lease_deadline

    def _unit_completed(self, e: UnitCompleted) -> None:
        unit = self.units.get(e.unit_id)
        if (
            unit is None
            or unit.status not in (UnitStatus.LEASED, UnitStatus.QUEUED)
            or e.worker_id not in unit.holders  # only a worker granted the unit may settle it
        ):
            return
        job = self.jobs[unit.job_id]
        kind = KINDS[job.kind]
        problem = kind.check_result(job.kind_state, unit.payload, e.result)
        if problem is not None:
            raise ValueError(f"result of unit {unit.id}: {problem}")
        kind.absorb(job.kind_state, unit.payload, e.result)
        if unit.status is UnitStatus.LEASED:
            # A holder whose lease expired, or a backup attempt, may report before the
            # unit's current holder: its report wins, and the other attempts are let go
            # (their workers are told to stop them), their reservation given back.
            self._drop_backup(unit)
            self._release_lease(unit, refund=unit.worker_id != e.worker_id)
        else:  # reported by a holder whose lease had expired: still the first report
            job.queue.remove(unit.id)
            self._set_runnable(job, e.at)
        unit.status = UnitStatus.DONE
        job.units_done += 1
        if e.wall_seconds > 0:
            job.timed_units += 1
            job.timed_seconds += e.wall_seconds
            remember_wall_time(job, e.wall_seconds)
        entry = self.ledger_entry(job.user, unit.priority)
        entry.charged += e.charged
        job.charged += e.charged
        entry.core_seconds += e.cpu_seconds
        entry.slot_seconds += e.slot_seconds
        entry.units += 1
        job.cpu_seconds += e.cpu_seconds
        job.workers[e.worker_id] = job.workers.get(e.worker_id, 0) + 1
        count_usage(self, job.user, e.charged, e.cpu_seconds)
        if e.charged:
            half_life = self.policy.half_life
            self.usage.setdefault(job.user, DecayedUsage()).add(e.charged, e.at, half_life)
            self.usage_total.add(e.charged, e.at, half_life)
        worker = self.workers.get(e.worker_id)
        if worker is not None:
            worker.units_done += 1
            worker.last_seen = e.at
        job.done_units.append(unit.id)
        if len(job.done_units) > RECENT_DONE_UNITS:
            forgotten = job.done_units.popleft()
            del self.units[forgotten]
            del job.unit_ids[forgotten]

    def _unit_failed(self, e: UnitFailed) -> None:
        unit = self.units.get(e.unit_id)
        if unit is None or unit.status is not UnitStatus.LEASED:
            return
        if e.worker_id == unit.backup_worker_id:
            # A backup attempt failed: counted, and let go; the first attempt runs on.
            self._drop_backup(unit)
            unit.failures += 1
            unit.failed_on.append(e.worker_id)
            unit.last_error = e.error
            return
        if unit.worker_id != e.worker_id:
            return  # only a holder can fail a unit
        self._release_lease(unit, refund=True)
        unit.failures += 1
        unit.failed_on.append(e.worker_id)
        unit.last_error = e.error
        job = self.jobs[unit.job_id]
        if e.retry and unit.backup_worker_id is not None:
            self._promote_backup(unit)  # its backup attempt is the one running now
            return
        if e.retry:
            # Queued again behind the job's other units, so another worker likely runs it.
            unit.status = UnitStatus.QUEUED
            job.queue.append(unit.id)
            self._set_runnable(job, e.at)
            return
        unit.status = UnitStatus.FAILED
        self._drop_backup(unit)
        if job.error is None:
            tries = f" (attempt {e.attempt} of {job.max_attempts})" if e.attempt else ""
            job.error = f"unit {unit.id} failed{tries}: {e.error}"

    def _lease_expired(self, e: UnitLeaseExpired) -> None:
        unit = self.units.get(e.unit_id)
        if unit is None or unit.status is not UnitStatus.LEASED:
            return
        if e.worker_id == unit.backup_worker_id:
            self._drop_backup(unit)
            return
        if unit.worker_id != e.worker_id:
            return
        self._release_lease(unit, refund=True)
        if unit.backup_worker_id is not None:
            self._promote_backup(unit)
            return
        unit.status = UnitStatus.QUEUED
        job = self.jobs[unit.job_id]
        if job.id in self.runnable:
            self.queue_index.remove(queue_key(job))
            job.queue.appendleft(unit.id)
            self.queue_index.add(queue_key(job))
        else:
            job.queue.appendleft(unit.id)
            self._set_runnable(job, e.at)

    def _policy_configured(self, e: PolicyConfigured) -> None:
        self.policy = PolicyConfig.model_validate(e.config)

    def _budget_set(self, e: BudgetSet) -> None:
        if e.credits is None:
            self.budgets.pop(e.user, None)
        else:
            self.budgets[e.user] = e.credits

    def _pilot_submitted(self, e: PilotSubmitted) -> None:
        pilot_fold.pilot_submitted(self.pilots, e)

    def _pilot_state_changed(self, e: PilotStateChanged) -> None:
        pilot_fold.pilot_state_changed(self.pilots, e)

    def _release_lease(self, unit: UnitView, *, refund: bool) -> None:
        self.leased.pop(unit.id, None)
        if unit.worker_id is not None and unit.worker_id in self.workers:
            self.workers[unit.worker_id].units.discard(unit.id)
        job = self.jobs[unit.job_id]
        entry = self.ledger_entry(job.user, unit.priority)
        entry.reserved -= unit.reserved
        if refund:
            entry.refunded += unit.reserved
        unit.reserved = 0.0
        unit.lease_deadline = None

    def _drop_backup(self, unit: UnitView) -> None:
        """Let a unit's backup attempt go (its worker is told to stop it)."""
        if unit.backup_worker_id is None:
            return
        self.backup_leased.pop(unit.id, None)
        worker = self.workers.get(unit.backup_worker_id)
        if worker is not None:
            worker.units.discard(unit.id)
        unit.backup_worker_id = unit.backup_deadline = unit.backup_granted_at = None

    def _promote_backup(self, unit: UnitView) -> None:
        """The current attempt is gone (failed, lost): the unit's backup attempt becomes
        its current one, so the unit stays leased instead of being queued again."""
        unit.worker_id = unit.backup_worker_id
        unit.lease_deadline = unit.backup_deadline
        unit.granted_at = unit.backup_granted_at
        if unit.lease_deadline is not None:
            self.leased[unit.id] = unit.lease_deadline
        self.backup_leased.pop(unit.id, None)
        unit.backup_worker_id = unit.backup_deadline = unit.backup_granted_at = None


def _planned(job: JobView, unit_id: str) -> bool:
    """Whether a unit id of the planner's form (`JOB/N`) was planned before: a completed
    unit that left the unit table must not be planned again by a repeated plan."""
    prefix, _, number = unit_id.rpartition("/")
    return prefix == job.id and number.isdigit() and int(number) < job.units_total


_HANDLERS: dict[type, Any] = {
    JobSubmitted: ParkState._job_submitted,
    UnitsPlanned: ParkState._units_planned,
    UnitsSplit: ParkState._units_split,
    JobPriorityChanged: ParkState._priority_changed,
    JobTagsChanged: ParkState._tags_changed,
    JobCancelled: ParkState._job_cancelled,
    JobCompleted: ParkState._job_completed,
    JobFailed: ParkState._job_failed,
    WorkerJoined: ParkState._worker_joined,
    WorkerLeft: ParkState._worker_left,
    WorkerExpired: ParkState._worker_expired,
    WorkRequested: ParkState._work_requested,
    UnitGranted: ParkState._unit_granted,
    LeaseExtended: ParkState._lease_extended,
    UnitCompleted: ParkState._unit_completed,
    UnitFailed: ParkState._unit_failed,
    UnitLeaseExpired: ParkState._lease_expired,
    PolicyConfigured: ParkState._policy_configured,
    BudgetSet: ParkState._budget_set,
    PilotSubmitted: ParkState._pilot_submitted,
    PilotStateChanged: ParkState._pilot_state_changed,
    NotificationAttempted: lambda s, e: s.notices.attempted(e),
    NotificationSent: lambda s, e: s.notices.sent(e),
    NotificationFailed: lambda s, e: s.notices.failed(e),
    NotificationCancelled: lambda s, e: s.notices.cancelled(e),
}
