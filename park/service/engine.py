"""The park service: runs commands against the projections, appends their events, folds.

This is the application layer between the pure core and the edges. Every state change
goes the same way: under one lock, `decide` (park.commands) turns a command into events,
the log appends them, and the projections fold them with the offsets the log assigned. A
second step, `settle`, moves job state machines on (plans units, records outcomes).
Background tasks reap expired leases and write snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from park import commands
from park.domain import Priority, UnitReport, WorkerPolicy
from park.errors import NotFound, TooLarge, Unavailable
from park.events.log import EventLog, EventTooLarge, LogUnavailable
from park.events.schema import Event, UnitGranted, UnitLeaseExpired, UnitsPlanned, WorkerExpired
from park.projections.state import JobView, ParkState, UnitView
from park.protocol import LEASE_SECONDS, REAP_INTERVAL
from park.scheduler.config import PolicyConfig
from park.service.archive_store import ArchiveStore
from park.service.feed import JobFeed
from park.service.history import find_job
from park.service.limits import UserLimits, check_submit
from park.service.snapshots import SnapshotStore

T = TypeVar("T")
log = logging.getLogger("park.service")


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    lease_seconds: float = LEASE_SECONDS
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    snapshot_every_events: int = 100_000
    snapshot_interval: float = 300.0
    reap_interval: float = REAP_INTERVAL
    limits: UserLimits = field(default_factory=UserLimits)
    worker_timeout: float = 90.0  # a worker silent this long is expired


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    """The leases' new deadline, and the units the worker must stop (it no longer holds
    them: their job was cancelled, or their lease expired or was revoked)."""

    lease_deadline: float
    stop: list[str]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while start-up loads a snapshot or replays.

    A replay allocates millions of objects, most of them kept by the projections; every
    allocation burst would trigger a collection scanning all that was kept so far, which
    more than doubles the replay time, and the unpickling time of a snapshot three to four
    times (benchmarks/log.py). Pausing only defers collection: events and read models form
    no reference cycles anyway, and any garbage is collected once the collector is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def new_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class LeasedUnit:
    unit: UnitView
    job: JobView
    lease_deadline: float


class ParkService:
    def __init__(
        self,
        log: EventLog,
        *,
        snapshots: SnapshotStore | None = None,
        config: ServiceConfig | None = None,
        clock: Callable[[], float] = time.time,
        archive: ArchiveStore | None = None,
    ) -> None:
        self.log = log
        self.snapshots = snapshots
        self.archive = archive if archive is not None else ArchiveStore()
        self.config = config or ServiceConfig()
        self.clock = clock
        self.state = ParkState()
        self.feed = JobFeed()
        self._lock = asyncio.Lock()
        self._work_available = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._snapshot_offset = 0
        self._closing = False
        self._unsettled: set[str] = set()
        # When each worker last called (leases, reports, heartbeats): an idle worker's
        # polls write nothing to the log, yet show it is alive.
        self._seen: dict[str, float] = {}
        self._polling: dict[str, int] = {}  # workers waiting in a lease long-poll now
        self._started_at = self.clock()

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the latest snapshot, fold the tail of the log, resume interrupted jobs."""
        await self.load_snapshot()
        await self.catch_up()
        async with self._lock:
            await self._commit(
                commands.configure_policy(self.state, self.config.policy, self.clock())
            )
            await self._settle([j.id for j in self.state.active_jobs()])
        self._tasks = [
            asyncio.create_task(self._reap_leases(), name="park-lease-reaper"),
            asyncio.create_task(self._snapshot_periodically(), name="park-snapshots"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.snapshot()
        self.archive.close()
        await self.log.close()

    async def load_snapshot(self) -> None:
        """Start from the newest snapshot that both the log and the archive back: the
        archive must hold every job that left memory before the snapshot's offset, or the
        whole log is folded again (rebuilding the archive)."""
        last = await self.log.last_offset()
        if self.archive.offset > last:
            self.archive.clear()  # folded from another log
        if self.snapshots is not None:
            with gc_paused():  # unpickling, like a replay, builds many long-lived objects
                loaded = self.snapshots.load_latest(max_offset=min(last, self.archive.offset))
            if loaded is not None:
                self.state = loaded
                self._snapshot_offset = loaded.offset

    def store_archived(self, *, position: bool = False) -> None:
        """Hand what the fold moved out of memory to the archive store, with the offset
        folded (`position`: record that offset even when nothing moved)."""
        if self.state.outbox or position:
            jobs, days = self.state.outbox.take()
            self.archive.write(jobs, days, self.state.offset)

    @property
    def closing(self) -> bool:
        """The server is shutting down: long polls and streams should end."""
        return self._closing

    def close_polls(self) -> None:
        """The server is shutting down: answer every waiting lease long-poll now and wait
        in no new one, so the server does not hang on polls (some from workers already
        gone) for up to their whole wait."""
        self._closing = True
        self._work_available.set()

    async def catch_up(self) -> None:
        """Fold every event the log has beyond the projections' offset (no feed yet:
        streams start with a snapshot from here)."""
        with gc_paused():
            while True:
                batch = await self.log.read(after=self.state.offset, limit=10_000)
                if not batch:
                    break
                seen = self.state.fold_errors
                for rec in batch:
                    self.state.apply(rec.offset, rec.event)
                self._tell_fold_errors(seen)
                self.store_archived()
        self.feed.start_at(self.state.offset, self.state)

    def snapshot(self) -> None:
        if self.snapshots is not None and self.state.offset > self._snapshot_offset:
            self.store_archived(position=True)  # a snapshot never runs ahead of the archive
            self.snapshots.save(self.state)
            self._snapshot_offset = self.state.offset

    async def read_your_writes(self, look: Callable[[], T]) -> T:
        """`look()` at the state once it holds what any server recorded before the call.
        The single writer has folded everything it appended: look now. (On a shared log
        a "not found" is looked at again after catching up: FollowingService.)"""
        return look()

    def job(self, job_id: str) -> JobView:
        """A job in memory or in the archive (NotFound if neither has it)."""
        job = find_job(self.state, self.archive, job_id)
        if job is None:
            raise NotFound(f"job_id: no job {job_id!r}", field="job_id")
        return job

    # -- the one write path ---------------------------------------------------------------

    async def _commit(self, events: Sequence[Event]) -> int:
        if not events:
            return self.state.offset
        offsets = await self._append(events)
        self._fold(list(zip(offsets, events, strict=True)))
        if any(isinstance(e, UnitsPlanned | UnitLeaseExpired) for e in events):
            self._work_available.set()
            self._work_available = asyncio.Event()
        self._changed.set()
        self._changed = asyncio.Event()
        return offsets[-1]

    async def _append(self, events: Sequence[Event]) -> list[int]:
        """Append a batch, or refuse it whole: a log that cannot take it now is a 503 to
        retry, an event too large for the log a 413."""
        try:
            return await self.log.append(events)
        except LogUnavailable as err:
            raise Unavailable(f"the event log cannot take writes now ({err}); retry") from err
        except EventTooLarge as err:
            raise TooLarge(f"body: too large to record ({err})", field="body") from err

    def _fold(self, records: Sequence[tuple[int, Event]]) -> None:
        """Apply events to the projections and tell the job feed what changed."""
        seen = self.state.fold_errors
        for offset, event in records:
            self.state.apply(offset, event)
        self._tell_fold_errors(seen)
        self.feed.record(records, self.state)
        self.store_archived()

    def _tell_fold_errors(self, seen: int) -> None:
        """Log each event the fold left out since it had left out `seen`."""
        new = self.state.fold_errors - seen
        if new > 0:
            for err in list(self.state.recent_fold_errors)[-new:]:
                log.error("event %d (%s) not applied: %s", err.offset, err.type, err.message)

    async def _settle(self, job_ids: Sequence[str] | set[str]) -> None:
        events = commands.settle_jobs(self.state, sorted(job_ids), self.clock())
        while events:
            await self._commit(events)
            events = commands.settle_jobs(
                self.state, sorted(commands.jobs_touched(events)), self.clock()
            )

    async def _run(self, events: Sequence[Event]) -> int:
        """Append a command's events, then move the jobs they touched on. Once appended,
        the command is done and is answered from the folded state: settling that fails
        (the log full or gone meanwhile) is retried in the background, not reported."""
        offset = await self._commit(events)
        await self._settle_or_defer(commands.jobs_touched(events))
        return max(offset, self.state.offset)

    async def _settle_or_defer(self, job_ids: Sequence[str] | set[str]) -> None:
        try:
            await self._settle(job_ids)
        except Exception as err:
            if not isinstance(err, Unavailable):
                log.exception("settling jobs %s failed; retrying", sorted(job_ids))
            self._unsettled.update(job_ids)

    async def _settle_deferred(self) -> None:
        """Settle jobs whose settling failed after their command was recorded."""
        if not self._unsettled:
            return
        async with self._lock:
            job_ids, self._unsettled = self._unsettled, set()
            await self._settle_or_defer(job_ids)

    # -- commands -------------------------------------------------------------------------

    async def submit(
        self,
        *,
        user: str,
        kind: str,
        spec: dict[str, Any],
        priority: Priority = Priority.FREE,
        tags: dict[str, str] | None = None,
        notify: object = None,
        resources: dict[str, Any] | None = None,
        max_attempts: int | None = None,
        max_unit_seconds: float | None = None,
    ) -> JobView:
        job_id = new_id()
        async with self._lock:
            check_submit(self.state, user, self.config.limits)
            events = commands.submit_job(
                job_id=job_id,
                user=user,
                kind=kind,
                spec=spec,
                priority=priority,
                tags=dict(tags or {}),
                notify=notify,
                now=self.clock(),
                resources=resources,
                max_attempts=max_attempts,
                max_unit_seconds=max_unit_seconds,
                unit_seconds_cap=self.config.policy.max_unit_seconds,
            )
            await self._run(events)
        return self.job(job_id)

    async def cancel(self, job_id: str, *, by: str | None) -> JobView:
        async with self._lock:
            await self._run(commands.cancel_job(self.state, job_id, by=by, now=self.clock()))
        return self.job(job_id)

    async def change_priority(self, job_id: str, priority: Priority, *, by: str | None) -> JobView:
        async with self._lock:
            events = commands.change_priority(self.state, job_id, priority, by=by, now=self.clock())
            await self._run(events)
        return self.job(job_id)

    async def change_job(
        self,
        job_id: str,
        *,
        tags: dict[str, str | None] | None,
        priority: Priority | None,
        by: str | None,
    ) -> JobView:
        """Tags and priority at once: both decided before anything is appended, so a
        change refused (the priority of a finished job) leaves the other unrecorded too."""
        async with self._lock:
            now = self.clock()
            events: list[Event] = []
            if tags is not None:
                events += commands.change_tags(self.state, job_id, tags, by=by, now=now)
            if priority is not None:
                events += commands.change_priority(self.state, job_id, priority, by=by, now=now)
            await self._run(events)
        return self.job(job_id)

    async def change_tags(
        self, job_id: str, tags: dict[str, str | None], *, by: str | None
    ) -> JobView:
        async with self._lock:
            await self._run(commands.change_tags(self.state, job_id, tags, by=by, now=self.clock()))
        return self.job(job_id)

    async def register_worker(
        self,
        *,
        name: str,
        cpus: int,
        owner: str | None = None,
        policy: WorkerPolicy = WorkerPolicy.ANY,
        job_id: str | None = None,
        registered_by: str | None = None,
        pilot_id: str | None = None,
        until: float | None = None,
        allowed: Sequence[str] | None = None,
    ) -> str:
        worker_id = new_id()
        async with self._lock:
            events = commands.register_worker(
                self.state,
                worker_id=worker_id,
                name=name,
                cpus=cpus,
                owner=owner,
                policy=policy,
                job_id=job_id,
                now=self.clock(),
                registered_by=registered_by,
                pilot_id=pilot_id,
                until=until,
                allowed=allowed,
            )
            await self._run(events)
        return worker_id

    async def execute(self, decide: Callable[[ParkState, float], Sequence[Event]]) -> int:
        """Run a pure decision (state, now -> events) under the lock and record its events:
        for edges with commands of their own, such as the pilot manager (park/batch)."""
        async with self._lock:
            return await self._run(decide(self.state, self.clock()))

    async def set_budget(self, user: str, credits: float | None) -> None:
        async with self._lock:
            await self._run(commands.set_budget(self.state, user, credits, self.clock()))

    async def remove_worker(self, worker_id: str) -> None:
        async with self._lock:
            await self._run(commands.remove_worker(self.state, worker_id, self.clock()))

    async def lease(
        self,
        worker_id: str,
        max_units: int,
        wait: float = 0.0,
        max_seconds: float | None = None,
    ) -> list[LeasedUnit]:
        """Grant up to `max_units` units, waiting up to `wait` seconds for work to appear."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        self.seen(worker_id)
        self._polling[worker_id] = self._polling.get(worker_id, 0) + 1
        try:
            return await self._lease(worker_id, max_units, deadline, max_seconds)
        finally:
            self.seen(worker_id)
            left = self._polling.pop(worker_id) - 1
            if left:
                self._polling[worker_id] = left

    async def _lease(
        self, worker_id: str, max_units: int, deadline: float, max_seconds: float | None
    ) -> list[LeasedUnit]:
        """The long-poll itself: grant, or wait for work until the loop time `deadline`."""
        loop = asyncio.get_running_loop()
        while True:
            available = self._work_available
            async with self._lock:
                events = commands.lease_units(
                    self.state,
                    worker_id,
                    max_units,
                    now=self.clock(),
                    lease_seconds=self.config.lease_seconds,
                    max_seconds=max_seconds,
                )
                if events:
                    await self._run(events)
                    return [
                        LeasedUnit(
                            unit=self.state.units[e.unit_id],
                            job=self.state.jobs[e.job_id],
                            lease_deadline=e.lease_deadline,
                        )
                        for e in events
                        if isinstance(e, UnitGranted) and e.unit_id in self.state.units
                    ]
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(available.wait(), remaining)

    async def report(self, worker_id: str, reports: Sequence[UnitReport]) -> list[str]:
        """Record unit results and failures; return the ids of reports that were ignored."""
        self.seen(worker_id)
        async with self._lock:
            events, ignored = commands.report_units(
                self.state, worker_id, reports, now=self.clock()
            )
            await self._run(events)
        return ignored

    async def heartbeat(
        self, worker_id: str, unit_ids: Sequence[str], *, extend: bool = True
    ) -> HeartbeatAnswer:
        """Extend the leases the worker holds of these units (unless `extend` is false: a
        worker checks often what to stop, but extends only every third of a lease, so its
        checks write nothing to the log) and name those it must stop."""
        self.seen(worker_id)
        async with self._lock:
            now = self.clock()
            if extend:
                events = commands.extend_leases(
                    self.state,
                    worker_id,
                    unit_ids,
                    now=now,
                    lease_seconds=self.config.lease_seconds,
                )
                await self._run(events)
            else:
                commands.require_worker(self.state, worker_id)
            worker = self.state.workers.get(worker_id)
            mine = worker.units if worker is not None else set()
            deadline = min((self.state.leased[u] for u in unit_ids if u in mine), default=now)
            return HeartbeatAnswer(
                deadline, commands.leases_to_stop(self.state, worker_id, unit_ids)
            )

    def seen(self, worker_id: str) -> None:
        self._seen[worker_id] = self.clock()

    async def expire_leases(self) -> int:
        async with self._lock:
            now = self.clock()
            events = commands.expire_leases(self.state, now)
            seen = {**self._seen, **dict.fromkeys(self._polling, now)}
            events += commands.expire_workers(
                self.state,
                now,
                timeout=self.config.worker_timeout,
                seen=seen,
                since=self._started_at,
            )
            await self._run(events)
        for e in events:
            if isinstance(e, WorkerExpired):
                self._seen.pop(e.worker_id, None)
        return len(events)

    async def record(self, decide: Callable[[ParkState], Sequence[Event]]) -> int:
        """Decide on the current state and append, under the lock: how an edge that acts
        outside (the notifier) records what it is about to do and what it did."""
        async with self._lock:
            return await self._run(decide(self.state))

    async def cancel_notifications(
        self, user: str | None, *, keys: Sequence[str] = (), job_ids: Sequence[str] = ()
    ) -> None:
        async with self._lock:
            await self._run(
                commands.cancel_notifications(
                    self.state, user, keys=keys, job_ids=job_ids, now=self.clock()
                )
            )

    async def wait_for_change(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
            return True
        return False

    # -- background -----------------------------------------------------------------------

    async def _reap_leases(self) -> None:
        while True:
            await asyncio.sleep(self.config.reap_interval)
            try:
                await self._settle_deferred()
                await self.expire_leases()
            except Unavailable as err:  # a full disk: the next tick retries
                log.warning("%s", err)
            except Exception:  # keep reaping; the next tick retries
                log.exception("reaping expired leases failed")

    async def _snapshot_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(1.0)
            behind = self.state.offset - self._snapshot_offset
            due = loop.time() - last >= self.config.snapshot_interval and behind > 0
            if behind >= self.config.snapshot_every_events or due:
                try:
                    self.snapshot()
                except Exception:
                    log.exception("writing a snapshot failed")
                last = loop.time()
