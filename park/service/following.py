"""The service on a log shared by several servers (Kafka): fold from the log, not directly.

With one writer (the SQLite log) the service folds its own events as it appends them.
With several API servers and schedulers writing one topic, each one's projections must
follow the log in its order, so here:

- a tail task folds every event of the log, in order, whoever wrote it;
- a command appends its events and answers once the projections have folded up to the
  offset it produced (read-your-writes); when nothing else was appended in between, its
  own events are folded at once, as in the single-writer service;
- a domain "not found" is retried once after catching up with the log's head, so a job
  submitted through one server can be cancelled through another at once;
- only the scheduler leader (chosen by an `Elector`) decides what the system decides by
  itself: it grants, plans units and records job outcomes (settle), reaps expired leases
  and records the policy. API servers record a worker's ask for work (a pending
  `work.requested`); the leader answers it with a decision and its grants when it has work
  for that worker; the API server hands the worker only the grants the fold accepted, so a
  deposed leader racing a new one can neither double-run nor double-charge a unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from park import commands
from park.errors import NotFound, Unavailable
from park.events.log import EventLog
from park.events.schema import (
    Event,
    UnitGranted,
    UnitLeaseExpired,
    UnitsPlanned,
    WorkRequested,
)
from park.protocol import ANSWER_MARGIN, CATCH_UP_TIMEOUT, SHORT_ASK
from park.service.archive_store import ArchiveStore
from park.service.engine import (
    LeasedUnit,
    ParkService,
    ServiceConfig,
    gc_paused,
    new_id,
)
from park.service.snapshots import SnapshotStore

log = logging.getLogger("park.service")


Callback = Callable[[], Awaitable[None]]
T = TypeVar("T")
P = ParamSpec("P")


class Elector(Protocol):
    async def run(self, elected: Callback, deposed: Callback) -> None: ...


@dataclass
class _Ask:
    """An ask of one of this server's workers, waiting for the leader's answer."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int | None = None
    seen: int = 0
    accepted: list[UnitGranted] = field(default_factory=list)
    # When the worker was answered or stopped waiting: grants for the ask that come
    # after that (late, or from a second leader) are given back.
    closed_at: float | None = None


def _read_your_writes(
    command: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The command, applied read-your-writes: a domain "not found" (a job or worker
    another server recorded, not folded here yet) is retried once after catching up."""

    async def retried(self: FollowingService, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._retry_unknown(lambda: command(self, *args, **kwargs))

    retried.__name__, retried.__doc__ = command.__name__, command.__doc__
    return retried


class FollowingService(ParkService):
    def __init__(
        self,
        log: EventLog,
        *,
        elector: Elector | None = None,
        snapshots: SnapshotStore | None = None,
        config: ServiceConfig | None = None,
        clock: Callable[[], float] = time.time,
        archive: ArchiveStore | None = None,
    ) -> None:
        super().__init__(log, snapshots=snapshots, config=config, clock=clock, archive=archive)
        self.elector = elector
        self.leading = False
        self._taking_office = False
        self._folded = asyncio.Event()
        self._leader_wake = asyncio.Event()
        self._open_asks: dict[str, WorkRequested] = {}  # unanswered asks, in log order
        self._asks: dict[str, _Ask] = {}  # this server's asks (and recently abandoned ones)
        self._touched: set[str] = set()  # jobs the leader should settle
        self._late: list[UnitGranted] = []  # grants that came after their asker gave up
        self._prune_at = 64

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the newest snapshot the log can back, fold the tail, then follow the log;
        stand for scheduler leader if an elector is given."""
        await self.load_snapshot()
        await self.catch_up()
        self._tasks = [
            asyncio.create_task(self._follow(), name="park-follow-log"),
            asyncio.create_task(self._lead(), name="park-scheduler"),
            asyncio.create_task(self._reap_leases(), name="park-lease-reaper"),
            asyncio.create_task(self._snapshot_periodically(), name="park-snapshots"),
        ]
        if self.elector is not None:
            elector = self.elector.run(self._elected, self._deposed)
            self._tasks.append(asyncio.create_task(elector, name="park-election"))

    async def stop(self) -> None:
        # Leave the election first (a standby takes over at once), then the rest.
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await super().stop()

    def close_polls(self) -> None:
        super().close_polls()
        for ask in self._asks.values():
            ask.done.set()

    async def catch_up(self) -> None:
        with gc_paused():
            while True:
                batch = await self.log.read(after=self.state.offset, limit=10_000)
                if not batch:
                    break
                seen = self.state.fold_errors
                for offset, event in self._continuing([(r.offset, r.event) for r in batch]):
                    self._observe(event)
                    self.state.apply(offset, event)
                self._tell_fold_errors(seen)
                self.store_archived()
        self._touched.clear()  # the leader settles every active job when it takes office
        self.feed.start_at(self.state.offset, self.state)

    # -- following the log ----------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            try:
                batch = await self.log.read(after=self.state.offset, limit=10_000)
                if batch:
                    self._fold([(r.offset, r.event) for r in batch])
                else:
                    await self.log.wait(self.state.offset, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the log failed; retrying")
                await asyncio.sleep(0.5)

    def _continuing(self, records: Sequence[tuple[int, Event]]) -> list[tuple[int, Event]]:
        """The records that continue the projections' offset without a hole: a read that
        skipped one must never make this server's state differ from the others'."""
        fresh: list[tuple[int, Event]] = []
        expected = self.state.offset + 1
        for offset, event in records:
            if offset < expected:
                continue  # folded already
            if offset > expected:
                log.error("the log read skipped from %d to %d; reading again", expected, offset)
                break
            fresh.append((offset, event))
            expected += 1
        return fresh

    def _fold(self, records: Sequence[tuple[int, Event]]) -> None:
        fresh = self._continuing(records)
        if not fresh:
            return
        seen = self.state.fold_errors
        for offset, event in fresh:
            self._observe(event)
            self.state.apply(offset, event)
        self._tell_fold_errors(seen)
        self.feed.record(fresh, self.state)
        self.store_archived()
        self._answered()
        if any(isinstance(e, UnitsPlanned | UnitLeaseExpired) for _, e in fresh):
            self._work_available.set()
            self._work_available = asyncio.Event()
        for signal in (self._changed, self._folded):
            signal.set()
        self._changed, self._folded = asyncio.Event(), asyncio.Event()
        self._leader_wake.set()

    def _observe(self, event: Event) -> None:
        """Note what an event means for asks and the leader, before it is folded (whether
        the fold accepts a grant depends on the state before it)."""
        job_id = getattr(event, "job_id", None)
        if job_id is not None:
            self._touched.add(job_id)
        if isinstance(event, WorkRequested) and event.request_id is not None:
            if event.pending:
                self._open_asks[event.request_id] = event
                self._forget_stale_asks(event.at)
            else:
                self._open_asks.pop(event.request_id, None)
                ask = self._asks.get(event.request_id)
                if ask is not None:
                    ask.expected = event.granted or 0
        elif isinstance(event, UnitGranted) and event.request_id is not None:
            ask = self._asks.get(event.request_id)
            if ask is not None:
                ask.seen += 1
                if self.state.accepts_grant(event):
                    (ask.accepted if ask.closed_at is None else self._late).append(event)

    def _forget_stale_asks(self, now: float) -> None:
        """Asks nobody answered (no leader, or no work) and nobody waits for any more."""
        if len(self._open_asks) >= self._prune_at:
            stale = [r for r, a in self._open_asks.items() if a.at + max(a.wait, SHORT_ASK) < now]
            for request_id in stale:
                del self._open_asks[request_id]
            self._prune_at = max(64, 2 * len(self._open_asks))

    def _answered(self) -> None:
        forget_before = self.clock() - 60.0
        for request_id, ask in list(self._asks.items()):
            if ask.closed_at is not None:
                if ask.closed_at < forget_before:
                    del self._asks[request_id]
            elif ask.expected is not None and ask.seen >= ask.expected:
                ask.done.set()
        if self._late:
            self._leader_wake.set()  # the lead task gives late grants back, on any server

    async def _reach(self, offset: int) -> None:
        """Until the projections have folded up to `offset`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_TIMEOUT
        while self.state.offset < offset:
            folded = self._folded
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(
                    f"the projections are at offset {self.state.offset}, "
                    f"the log at {offset}: is the log reachable?"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(folded.wait(), remaining)

    async def sync(self) -> None:
        """Fold everything the log had when called."""
        await self._reach(await self.log.last_offset())

    # -- the write path -------------------------------------------------------------------

    async def _commit(self, events: Sequence[Event]) -> int:
        if not events:
            return self.state.offset
        offsets = await self._append(events)
        if offsets[0] == self.state.offset + 1:
            self._fold(list(zip(offsets, events, strict=True)))  # ours are next: fold now
        if self.state.offset < offsets[-1]:
            await self._reach(offsets[-1])
        return offsets[-1]

    async def _run(self, events: Sequence[Event]) -> int:
        """Append and fold; the leader settles the jobs touched when it folds them."""
        offset = await self._commit(events)
        return max(offset, self.state.offset)

    async def _settle(self, job_ids: Sequence[str] | set[str]) -> None:
        if self.leading:
            await super()._settle(job_ids)

    # -- commands that differ -------------------------------------------------------------

    async def _retry_unknown(self, command: Callable[[], Awaitable[T]]) -> T:
        """Another server may have recorded what this one has not folded yet."""
        try:
            return await command()
        except NotFound:
            await self.sync()
            return await command()

    async def read_your_writes(self, look: Callable[[], T]) -> T:
        try:
            return look()
        except NotFound:
            await self.sync()
            return look()

    # Every command another server's records may be needed for: one wrapper, no copies.
    cancel = _read_your_writes(ParkService.cancel)
    cancel_notifications = _read_your_writes(ParkService.cancel_notifications)
    change_priority = _read_your_writes(ParkService.change_priority)
    change_job = _read_your_writes(ParkService.change_job)
    change_tags = _read_your_writes(ParkService.change_tags)
    register_worker = _read_your_writes(ParkService.register_worker)
    report = _read_your_writes(ParkService.report)
    heartbeat = _read_your_writes(ParkService.heartbeat)
    remove_worker = _read_your_writes(ParkService.remove_worker)

    async def lease(
        self,
        worker_id: str,
        max_units: int,
        wait: float = 0.0,
        max_seconds: float | None = None,
    ) -> list[LeasedUnit]:
        """Record the ask, then wait for the leader's answer for up to `wait` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, SHORT_ASK)
        request_id = new_id()
        ask = self._asks[request_id] = _Ask()
        try:
            await self._retry_unknown(
                lambda: self._ask(worker_id, max_units, max_seconds, request_id, wait)
            )
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ask.done.wait(), max(0.0, deadline - loop.time()))
        finally:
            ask.closed_at = self.clock()  # from now on, grants for it are given back
        return [
            LeasedUnit(
                unit=self.state.units[g.unit_id],
                job=self.state.jobs[g.job_id],
                lease_deadline=g.lease_deadline,
            )
            for g in ask.accepted
            if g.unit_id in self.state.units
        ]

    async def _ask(
        self,
        worker_id: str,
        max_units: int,
        max_seconds: float | None,
        request_id: str,
        wait: float,
    ) -> None:
        async with self._lock:
            events = commands.ask_for_work(
                self.state,
                worker_id,
                max_units,
                request_id=request_id,
                wait=wait,
                now=self.clock(),
                max_seconds=max_seconds,
            )
            await self._commit(events)

    async def expire_leases(self) -> int:
        if not self.leading:
            return 0
        return await super().expire_leases()

    # -- the scheduler leader -------------------------------------------------------------

    async def _elected(self) -> None:
        log.warning("scheduler: leading (log offset %d)", self.state.offset)
        self.leading = True
        self._taking_office = True
        self._leader_wake.set()

    async def _deposed(self) -> None:
        log.warning("scheduler: no longer leading (log offset %d)", self.state.offset)
        self.leading = False
        # Let a decision under way finish before the next leader starts deciding.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0), self._lock:
                pass

    async def _lead(self) -> None:
        while True:
            await self._leader_wake.wait()
            self._leader_wake.clear()
            try:
                await self._give_back_late()
                if not self.leading or self._closing:
                    continue
                if self._taking_office:
                    await self._take_office()
                async with self._lock:
                    touched, self._touched = self._touched, set()
                    await self._settle(touched)
                    await self._answer_asks()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling failed; retrying")
                await asyncio.sleep(0.5)
                self._leader_wake.set()

    async def _take_office(self) -> None:
        """Catch up with the log's head, then do what a restarted single server does:
        record the policy, move every active job on."""
        await self.sync()
        async with self._lock:
            self._taking_office = False
            self._touched.clear()
            await self._commit(
                commands.configure_policy(self.state, self.config.policy, self.clock())
            )
            await super()._settle([j.id for j in self.state.active_jobs()])

    async def _answer_asks(self) -> None:
        now = self.clock()
        for request_id, ask in list(self._open_asks.items()):
            if not self.leading:
                return
            short = ask.wait < SHORT_ASK
            last_call = ask.at + (SHORT_ASK if short else ask.wait) - ANSWER_MARGIN
            if now > last_call:
                self._open_asks.pop(request_id, None)
                continue
            if not short and not self.state.runnable:
                continue
            events = commands.answer_ask(
                self.state,
                ask,
                now=now,
                lease_seconds=self.config.lease_seconds,
                even_empty=short,
            )
            if events:
                await self._commit(events)
            elif ask.worker_id not in self.state.workers:
                self._open_asks.pop(request_id, None)

    async def _give_back_late(self) -> None:
        if not self._late:
            return
        late, self._late = self._late, []
        async with self._lock:
            await self._commit(commands.give_back(self.state, late, self.clock()))
