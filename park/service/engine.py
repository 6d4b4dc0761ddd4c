"""The park service: the edge around the pure core (park/core.py) that does the I/O.

Every state change goes the same way: under one lock, `core.step` decides a command's
events, the log appends them, `core.fold` folds them with the offsets the log assigned
and says what changed, and the service acts on the changes: it wakes lease long-polls
when work appeared, tells the job feed and the archive, and settles the jobs touched
(another step: plan their units, record their outcomes) until nothing follows.

On a log shared by several servers (Kafka) two collaborators join it
(park/service/following.py): a `Follower` that tails the log into the same fold and
answers this server's asks for work, and a `Leader` that, when elected, does what the
single writer does inline (settle, grant, reap). Background tasks reap expired leases
and write snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, Unpack

from park import core
from park.commands import WorkerDetails, jobs_touched
from park.core import HeartbeatAnswer, LeasedUnit
from park.domain import Priority, UnitReport
from park.errors import NotFound, TooLarge, Unavailable
from park.events.log import EventLog, EventTooLarge, LogUnavailable
from park.events.schema import Event
from park.projections.state import JobView, ParkState
from park.protocol import LEASE_SECONDS, REAP_INTERVAL
from park.scheduler.backups import next_straggler_at
from park.scheduler.config import PolicyConfig
from park.service.archive_store import ArchiveStore
from park.service.feed import JobFeed
from park.service.history import find_job
from park.service.limits import UserLimits, check_submit
from park.service.snapshots import SnapshotStore
from park.service.waiters import LeaseWaiters
from park.waiting import wait_event

if TYPE_CHECKING:
    from park.service.following import Follower, Leader

__all__ = ["HeartbeatAnswer", "LeasedUnit", "ParkService", "ServiceConfig"]

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


class Outcome(NamedTuple):
    """A command's own step, and the offset the projections had folded after it."""

    step: core.Step
    offset: int


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
        # On a shared log (FollowingService): who folds others' events, who decides what
        # the system decides by itself. The single writer does both itself, inline.
        self.follower: Follower | None = None
        self.leader: Leader | None = None
        self._lock = asyncio.Lock()
        self._waiters = LeaseWaiters()  # lease long-polls waiting for work
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
        """Load the latest snapshot, fold the tail of the log; then take office (the
        single writer: resume interrupted jobs) or follow the log and stand for leader."""
        await self.load_snapshot()
        await self.catch_up()
        background: dict[str, Coroutine[Any, Any, None]] = {}
        if self.follower is not None:
            background["park-follow-log"] = self.follower.follow()
        if self.leader is None:
            await self.take_office()
        else:
            background["park-scheduler"] = self.leader.lead()
        background["park-lease-reaper"] = self._reap_leases()
        background["park-snapshots"] = self._snapshot_periodically()
        if self.leader is not None:
            background.update(("park-election", run) for run in self.leader.election())
        self._tasks = [asyncio.create_task(run, name=name) for name, run in background.items()]

    async def stop(self) -> None:
        # Leave the election first (a standby takes over at once), then the rest.
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            self.snapshot()
        except Exception as err:  # a cache: the next start-up folds the log instead
            log.warning("no snapshot at shutdown: %s", err)
        self.archive.close()
        await self.log.close()

    async def take_office(self) -> None:
        """What a server deciding for the system does first: record the policy, move every
        active job on (work a crash interrupted between two appends is picked up again)."""
        async with self._lock:
            policy = core.ConfigurePolicy(config=self.config.policy)
            await self._commit(core.step(self.state, policy, self.clock()).events)
            await self._settle([j.id for j in self.state.active_jobs()])

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
            try:
                self.archive.write(jobs, days, self.state.offset)
            except BaseException:  # (a full or read-only disk) kept for the next try
                self.state.outbox.jobs[:0], self.state.outbox.days[:0] = jobs, days
                raise

    @property
    def closing(self) -> bool:
        """The server is shutting down: long polls and streams should end."""
        return self._closing

    @property
    def leading(self) -> bool:
        """Whether this server decides what the system decides by itself (grants, plans,
        outcomes, expiries): the single writer always, on a shared log the elected one."""
        return self.leader is None or self.leader.leading

    def close_polls(self) -> None:
        """The server is shutting down: answer every waiting lease long-poll now and wait
        in no new one, so the server does not hang on polls (some from workers already
        gone) for up to their whole wait."""
        self._closing = True
        self._waiters.wake_all()
        if self.follower is not None:
            self.follower.close_polls()

    async def catch_up(self) -> None:
        """Fold every event the log has beyond the projections' offset (no feed yet:
        streams start with a snapshot from here)."""
        with gc_paused():
            while True:
                batch = await self.log.read(after=self.state.offset, limit=10_000)
                if not batch:
                    break
                changes = core.fold(self.state, self._fresh([(r.offset, r.event) for r in batch]))
                self._tell_fold_errors(changes)
                self.store_archived()
                if self.follower is not None:
                    self.follower.asks.observe(changes)
        self.feed.start_at(self.state.offset, self.state)

    def snapshot(self) -> None:
        if self.snapshots is not None and self.state.offset > self._snapshot_offset:
            self.store_archived(position=True)  # a snapshot never runs ahead of the archive
            self.snapshots.save(self.state)
            self._snapshot_offset = self.state.offset

    async def sync(self) -> None:
        """Fold everything the log had when called (the single writer always has)."""
        if self.follower is not None:
            await self.follower.sync()

    async def read_your_writes(self, look: Callable[[], T]) -> T:
        """`look()` at the state once it holds what any server recorded before the call:
        on a shared log a "not found" is looked at again after catching up."""
        try:
            return look()
        except NotFound:
            if self.follower is None:
                raise
            await self.sync()
            return look()

    def job(self, job_id: str) -> JobView:
        """A job in memory or in the archive (NotFound if neither has it)."""
        job = find_job(self.state, self.archive, job_id)
        if job is None:
            raise NotFound(f"job_id: no job {job_id!r}", field="job_id")
        return job

    # -- the one write path ---------------------------------------------------------------

    async def handle(
        self, command: core.Command, *, check: Callable[[ParkState], None] | None = None
    ) -> Outcome:
        """Run a command: decide it under the lock (after `check`), record and fold its
        events, settle the jobs they touched. Read-your-writes: on a shared log a domain
        "not found" (a job or worker another server recorded, not folded here yet) is
        decided again once after catching up."""

        async def once() -> Outcome:
            async with self._lock:
                if check is not None:
                    check(self.state)
                step = core.step(self.state, command, self.clock())
                return Outcome(step, await self._run(step.events))

        try:
            return await once()
        except NotFound:
            if self.follower is None:
                raise
            await self.sync()
            return await once()

    async def _commit(self, events: Sequence[Event]) -> int:
        """Append and fold. On a shared log others' events may come between: ours are
        folded at once when they are next, else once the follower has reached them."""
        if not events:
            return self.state.offset
        offsets = await self._append(events)
        if self.follower is None or offsets[0] == self.state.offset + 1:
            self.fold(list(zip(offsets, events, strict=True)))
        if self.follower is not None and self.state.offset < offsets[-1]:
            await self.follower.reach(offsets[-1])
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

    def fold(self, records: Sequence[tuple[int, Event]]) -> core.Changes:
        """Fold records into the projections and act on what changed: the job feed, the
        archive, lease long-polls, change waiters, and the follower's and leader's books."""
        changes = core.fold(self.state, self._fresh(records))
        if not changes.records:
            return changes
        self._tell_fold_errors(changes)
        self.feed.record(changes.records, self.state)
        try:
            self.store_archived()
        except Exception as err:  # what was appended stands; the archive takes it later
            log.warning("the archive cannot take finished jobs now: %s", err)
        if changes.work_available:
            self._waiters.work_added()
        self._changed.set()
        self._changed = asyncio.Event()
        if self.follower is not None:
            self.follower.folded(changes)
        if self.leader is not None:
            self.leader.folded(changes)
        return changes

    def _fresh(self, records: Sequence[tuple[int, Event]]) -> Sequence[tuple[int, Event]]:
        """The single writer folds what it appended; a shared log's reads must continue
        the projections' offset without a hole."""
        return records if self.follower is None else self.follower.continuing(records)

    def _tell_fold_errors(self, changes: core.Changes) -> None:
        """Log each event the fold left out."""
        for err in changes.fold_errors:
            log.error("event %d (%s) not applied: %s", err.offset, err.type, err.message)

    async def _settle(self, job_ids: Sequence[str] | set[str]) -> None:
        """Move jobs on until nothing follows (under the lock)."""
        touched = set(job_ids)
        while touched:
            settle = core.SettleJobs(job_ids=tuple(sorted(touched)))
            events = core.step(self.state, settle, self.clock()).events
            await self._commit(events)
            touched = jobs_touched(events)

    async def _run(self, events: Sequence[Event]) -> int:
        """Append a command's events, then (the single writer) move the jobs they touched
        on; on a shared log the leader settles them when it folds them. Once appended, the
        command is done and is answered from the folded state: settling that fails (the
        log full or gone meanwhile) is retried in the background, not reported."""
        offset = await self._commit(events)
        if self.leader is None:
            await self._settle_or_defer(jobs_touched(events))
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
        command = core.SubmitJob(
            job_id=job_id,
            user=user,
            kind=kind,
            spec=spec,
            priority=priority,
            tags=dict(tags or {}),
            notify=notify,
            resources=resources,
            max_attempts=max_attempts,
            max_unit_seconds=max_unit_seconds,
            unit_seconds_cap=self.config.policy.max_unit_seconds,
        )
        await self.handle(command, check=lambda s: check_submit(s, user, self.config.limits))
        return self.job(job_id)

    async def cancel(self, job_id: str, *, by: str | None) -> JobView:
        await self.handle(core.CancelJob(job_id=job_id, by=by))
        return self.job(job_id)

    async def change_priority(self, job_id: str, priority: Priority, *, by: str | None) -> JobView:
        return await self.change_job(job_id, tags=None, priority=priority, by=by)

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
        await self.handle(core.ChangeJob(job_id=job_id, by=by, tags=tags, priority=priority))
        return self.job(job_id)

    async def change_tags(
        self, job_id: str, tags: dict[str, str | None], *, by: str | None
    ) -> JobView:
        return await self.change_job(job_id, tags=tags, priority=None, by=by)

    async def register_worker(self, **details: Unpack[WorkerDetails]) -> str:
        worker_id = new_id()
        await self.handle(core.RegisterWorker(worker_id=worker_id, details=details))
        return worker_id

    async def execute(self, decide: Callable[[ParkState, float], Sequence[Event]]) -> int:
        """Run a pure decision (state, now -> events) under the lock and record its events:
        for edges with commands of their own, such as the pilot manager (park/batch)."""
        return (await self.handle(core.Decide(decide=decide))).offset

    async def record(self, decide: Callable[[ParkState], Sequence[Event]]) -> int:
        """Decide on the current state and append, under the lock: how an edge that acts
        outside (the notifier) records what it is about to do and what it did."""
        return await self.execute(lambda state, now: decide(state))

    async def set_budget(self, user: str, credits: float | None) -> None:
        await self.handle(core.SetBudget(user=user, credits=credits))

    async def remove_worker(self, worker_id: str) -> None:
        await self.handle(core.RemoveWorker(worker_id=worker_id))

    async def lease(
        self,
        worker_id: str,
        max_units: int,
        wait: float = 0.0,
        max_seconds: float | None = None,
    ) -> list[LeasedUnit]:
        """Grant up to `max_units` units, waiting up to `wait` seconds for work to appear
        (on a shared log: ask the leader, and wait for its answer)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        self.seen(worker_id)
        self._polling[worker_id] = self._polling.get(worker_id, 0) + 1
        try:
            if self.follower is not None:
                return await self.follower.ask(worker_id, max_units, wait, max_seconds)
            return await self._lease(worker_id, max_units, deadline, max_seconds)
        finally:
            self.seen(worker_id)
            left = self._polling.pop(worker_id) - 1
            if left:
                self._polling[worker_id] = left

    async def _lease(
        self, worker_id: str, max_units: int, deadline: float, max_seconds: float | None
    ) -> list[LeasedUnit]:
        """The long-poll itself: grant, or wait for work until the loop time `deadline`.
        A poll woken by work hands the wake-up on while work is still queued (waiters)."""
        loop = asyncio.get_running_loop()
        command = core.LeaseUnits(
            worker_id=worker_id,
            max_units=max_units,
            lease_seconds=self.config.lease_seconds,
            max_seconds=max_seconds,
        )
        relay: int | None = None
        while True:
            try:
                granted = (await self.handle(command)).step.events
            finally:
                if relay is not None and self.state.runnable:
                    self._waiters.wake_next(relay)
            if granted:
                return core.leased_units(self.state, granted)
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return []
            now = self.clock()
            straggler = next_straggler_at(self.state, worker_id, now)
            if straggler is not None:  # look again when a unit may get a backup attempt
                remaining = min(remaining, straggler - now + 0.001)
            relay = await self._waiters.wait(remaining)

    async def report(self, worker_id: str, reports: Sequence[UnitReport]) -> list[str]:
        """Record unit results and failures; return the ids of reports that were ignored."""
        self.seen(worker_id)
        step = (await self.handle(core.ReportUnits(worker_id=worker_id, reports=reports))).step
        return [u for e in step.effects if isinstance(e, core.ReportsIgnored) for u in e.unit_ids]

    async def heartbeat(
        self, worker_id: str, unit_ids: Sequence[str], *, extend: bool = True
    ) -> HeartbeatAnswer:
        """Extend the leases the worker holds of these units (unless `extend` is false: a
        worker checks often what to stop, but extends only every third of a lease, so its
        checks write nothing to the log) and name those it must stop."""
        self.seen(worker_id)
        command = core.Heartbeat(
            worker_id=worker_id,
            unit_ids=unit_ids,
            lease_seconds=self.config.lease_seconds,
            extend=extend,
        )
        await self.handle(command)
        return core.heartbeat_answer(self.state, worker_id, unit_ids, self.clock())

    def seen(self, worker_id: str) -> None:
        self._seen[worker_id] = self.clock()

    async def expire_leases(self) -> int:
        """Reap leases past their deadline and workers silent too long (the leader only)."""
        if not self.leading:
            return 0
        command = core.ExpireLeases(
            worker_timeout=self.config.worker_timeout,
            seen=self._seen,  # read when decided, under the lock
            polling=self._polling.keys(),
            since=self._started_at,
        )
        step = (await self.handle(command)).step
        for effect in step.effects:
            if isinstance(effect, core.WorkersExpired):
                for worker_id in effect.worker_ids:
                    self._seen.pop(worker_id, None)
        return len(step.events)

    async def cancel_notifications(
        self, user: str | None, *, keys: Sequence[str] = (), job_ids: Sequence[str] = ()
    ) -> None:
        await self.handle(core.CancelNotifications(user=user, keys=keys, job_ids=job_ids))

    async def wait_for_change(self, timeout: float) -> bool:
        return await wait_event(self._changed, timeout)

    async def wait_for_end(self, job_id: str, timeout: float) -> None:
        """Until the job has ended (complete, failed, cancelled) or `timeout` seconds have
        passed: a client waiting for its result hears of the end at once, without polling."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (job := self.state.jobs.get(job_id)) is not None and job.active:
            left = deadline - loop.time()
            if left <= 0 or self._closing:
                return
            await self.wait_for_change(left)

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
