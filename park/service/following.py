"""The service on a log shared by several servers (Kafka): a Follower and a Leader.

With one writer (the SQLite log) the service folds its own events as it appends them and
decides everything itself. With several API servers and schedulers writing one topic,
each one's projections must follow the log in its order. `FollowingService` is the same
`ParkService` (park/service/engine.py: one step/fold core, one write path) composed
with two collaborators, as eventsourcing composes an application with a follower and a
leader:

- the `Follower` tails the log into the service's fold, every event in order whoever
  wrote it; a command's events are folded at once when nothing else came between,
  else the command waits until the follower has reached them (read-your-writes; a domain
  "not found" is decided again after catching up, for every command). A worker's lease
  request becomes an ask on the log (`work.requested`, pending), and the follower hands
  the worker the grants of the leader's answer that the fold accepted (the ask
  bookkeeping, pure, is park/service/asks.py);
- the `Leader`, once chosen by an `Elector`, decides what the system decides by itself:
  it plans units and records job outcomes (settle), answers asks with grants, reaps
  expired leases and records the policy. A deposed leader racing a new one can neither
  double-run nor double-charge a unit: the fold keeps the first grant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypedDict, Unpack

from park import core
from park.core import LeasedUnit
from park.errors import Unavailable
from park.events.log import EventLog
from park.events.schema import Event
from park.protocol import CATCH_UP_TIMEOUT, SHORT_ASK
from park.scheduler.backups import first_straggler_at, next_straggler_at
from park.service.archive_store import ArchiveStore
from park.service.asks import AskBook
from park.service.engine import ParkService, ServiceConfig, new_id
from park.service.snapshots import SnapshotStore
from park.waiting import wait_event

log = logging.getLogger("park.service")

Callback = Callable[[], Awaitable[None]]


class Elector(Protocol):
    async def run(self, elected: Callback, deposed: Callback) -> None: ...


class Follower:
    """Folds the shared log into the service, and answers this server's asks for work."""

    def __init__(self, service: ParkService) -> None:
        self.service = service
        self.asks = AskBook()
        self._folded = asyncio.Event()
        self._answered: dict[str, asyncio.Event] = {}  # this server's asks, by request id

    async def follow(self) -> None:
        """Tail the log for ever, folding every event in order."""
        service = self.service
        while True:
            try:
                batch = await service.log.read(after=service.state.offset, limit=10_000)
                if batch:
                    service.fold([(r.offset, r.event) for r in batch])
                else:
                    await service.log.wait(service.state.offset, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the log failed; retrying")
                await asyncio.sleep(0.5)

    def continuing(self, records: Sequence[tuple[int, Event]]) -> list[tuple[int, Event]]:
        """The records that continue the projections' offset without a hole: a read that
        skipped one must never make this server's state differ from the others'."""
        offset = self.service.state.offset
        fresh = core.continuing(offset, records)
        end = fresh[-1][0] if fresh else offset
        if records and records[-1][0] > end + 1:
            log.error("the log read skipped from %d to %d; reading again", end + 1, records[-1][0])
        return fresh

    def folded(self, changes: core.Changes) -> None:
        """Note what the fold means for asks; wake the askers answered and the commands
        waiting to read their writes."""
        self.asks.observe(changes)
        for request_id in self.asks.answered(self.service.clock()):
            waiter = self._answered.get(request_id)
            if waiter is not None:
                waiter.set()
        self._folded.set()
        self._folded = asyncio.Event()

    async def reach(self, offset: int) -> None:
        """Until the projections have folded up to `offset`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_TIMEOUT
        while self.service.state.offset < offset:
            folded = self._folded
            remaining = deadline - loop.time()
            if remaining <= 0:
                state = self.service.state
                raise Unavailable(
                    f"the projections are at offset {state.offset}, "
                    f"the log at {offset}: is the log reachable?"
                )
            await wait_event(folded, remaining)

    async def sync(self) -> None:
        """Fold everything the log had when called."""
        await self.reach(await self.service.log.last_offset())

    async def ask(
        self, worker_id: str, max_units: int, wait: float, max_seconds: float | None
    ) -> list[LeasedUnit]:
        """Record the ask, then wait for the leader's answer for up to `wait` seconds."""
        service = self.service
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, SHORT_ASK)
        request_id = new_id()
        self.asks.ask(request_id)
        answered = self._answered[request_id] = asyncio.Event()
        command = core.AskForWork(
            worker_id=worker_id,
            max_units=max_units,
            request_id=request_id,
            wait=wait,
            max_seconds=max_seconds,
        )
        try:
            await service.handle(command)
            if not service.closing:
                await wait_event(answered, deadline - loop.time())
        finally:
            del self._answered[request_id]
            grants = self.asks.close(request_id, service.clock())  # later ones: given back
        return core.leased_units(service.state, grants)

    def close_polls(self) -> None:
        for answered in self._answered.values():
            answered.set()


class Leader:
    """What the elected server does: settle the jobs folded, answer open asks, reap
    expired leases (ParkService.expire_leases asks `leading`); and, on any server, give
    back grants that came after their asker stopped waiting."""

    def __init__(self, service: ParkService, asks: AskBook, elector: Elector | None) -> None:
        self.service = service
        self.asks = asks
        self.elector = elector
        self.leading = False
        self._taking_office = False
        self._wake = asyncio.Event()
        self._touched: set[str] = set()  # jobs folded since the last settling
        # With nothing queued, asks wait for a fold, or until a unit becomes a straggler
        # that an asking worker could back up (no fold tells when that is).
        self._look_again_at: float | None = None

    def election(self) -> list[Coroutine[Any, Any, None]]:
        """The task standing for leader, if this server is a candidate."""
        return [self.elector.run(self._elected, self._deposed)] if self.elector else []

    def folded(self, changes: core.Changes) -> None:
        self._touched |= changes.jobs
        self._wake.set()

    async def _elected(self) -> None:
        log.warning("scheduler: leading (log offset %d)", self.service.state.offset)
        self.leading = True
        self._taking_office = True
        self._wake.set()

    async def _deposed(self) -> None:
        log.warning("scheduler: no longer leading (log offset %d)", self.service.state.offset)
        self.leading = False
        # Let a decision under way finish before the next leader starts deciding.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0), self.service._lock:
                pass

    async def lead(self) -> None:
        """Wake on every fold: decide what there is to decide."""
        service = self.service
        while True:
            if self._look_again_at is None:
                await self._wake.wait()
            else:
                await wait_event(self._wake, self._look_again_at - service.clock())
            self._wake.clear()
            try:
                await self._give_back_late()
                if not self.leading or service.closing:
                    continue
                if self._taking_office:
                    await service.sync()  # catch up with the log's head first
                    self._taking_office = False
                    self._touched.clear()
                    await service.take_office()
                async with service._lock:
                    touched, self._touched = self._touched, set()
                    await service._settle(touched)
                    await self._answer_asks()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling failed; retrying")
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _answer_asks(self) -> None:
        service = self.service
        now = service.clock()
        self._look_again_at = None
        straggler_at: float | None = None  # looked up once, if an ask waits on nothing
        for ask, short in self.asks.to_answer(now):
            if not self.leading:
                return
            if not short and not service.state.runnable:
                if straggler_at is None:
                    straggler_at = first_straggler_at(service.state) or math.inf
                if straggler_at > now:  # nothing to grant it, not even a backup attempt
                    self._look_again(straggler_at)
                    continue
            answer = core.AnswerAsk(
                ask=ask, lease_seconds=service.config.lease_seconds, even_empty=short
            )
            events = core.step(service.state, answer, now).events
            if events:
                await service._commit(events)
            elif ask.worker_id not in service.state.workers:
                self.asks.drop(ask.request_id or "")
            elif not short:
                self._look_again(next_straggler_at(service.state, ask.worker_id, now))

    def _look_again(self, straggler_at: float | None) -> None:
        """Answer the waiting asks again once this straggler is due."""
        if straggler_at is not None and straggler_at < math.inf:
            at = straggler_at + 0.001
            self._look_again_at = min(at, self._look_again_at or at)

    async def _give_back_late(self) -> None:
        late = self.asks.take_late()
        if late:
            await self.service.handle(core.GiveBack(grants=tuple(late)))


class ServiceOptions(TypedDict, total=False):
    snapshots: SnapshotStore | None
    config: ServiceConfig | None
    clock: Callable[[], float]
    archive: ArchiveStore | None


class FollowingService(ParkService):
    """A `ParkService` on a shared log: the same service, with a Follower and a Leader
    (standing for election if an `elector` is given)."""

    def __init__(
        self, log: EventLog, *, elector: Elector | None = None, **options: Unpack[ServiceOptions]
    ) -> None:
        super().__init__(log, **options)
        self.follower = Follower(self)
        self.leader = Leader(self, self.follower.asks, elector)
