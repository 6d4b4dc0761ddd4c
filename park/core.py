"""The service core, without I/O: `step` decides, `fold` folds and says what changed.

Modelled on dask's `WorkerState.handle_stimulus` and h11's `ConnectionState`: the service
(park/service/engine.py), the in-process simulator and the property tests all drive the
same two functions, so what a test exercises is what the server runs:

    events, effects = step(state, command, now)      # pure: decide on the state
    offsets = log.append(events)                     # the edge's one I/O
    changes = fold(state, zip(offsets, events))      # pure: the projections move on
    step(state, follow_up(changes), now) ...         # settle the jobs touched

`fold` returns a `Changes` value (jobs touched, whether work became available, the
grants the fold accepted, the events it left out) instead of setting asyncio events:
the edge decides what to wake. Time enters as `now`, ids inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from park import commands
from park.commands import WorkerDetails
from park.domain import Priority, UnitReport
from park.events.schema import (
    Event,
    UnitFailed,
    UnitGranted,
    UnitLeaseExpired,
    UnitsPlanned,
    UnitsSplit,
    WorkerExpired,
    WorkRequested,
    job_id_of,
)
from park.projections.state import FoldError, JobView, ParkState, UnitView
from park.scheduler.config import PolicyConfig

# -- commands: what a caller (or the service itself) asks the core to decide --------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitJob:
    job_id: str
    user: str
    kind: str
    spec: dict[str, object]
    priority: Priority = Priority.FREE
    tags: dict[str, str] = field(default_factory=dict)
    notify: object = None
    resources: dict[str, object] | None = None
    max_attempts: int | None = None
    max_unit_seconds: float | None = None
    unit_seconds_cap: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelJob:
    job_id: str
    by: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeJob:
    """Tags and priority at once: both decided before anything is recorded, so a change
    refused (the priority of a finished job) leaves the other unrecorded too."""

    job_id: str
    by: str | None
    tags: dict[str, str | None] | None = None
    priority: Priority | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterWorker:
    worker_id: str
    details: WorkerDetails


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveWorker:
    worker_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SetBudget:
    user: str
    credits: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseUnits:
    """Grant at once (one writer decides everything)."""

    worker_id: str
    max_units: int
    lease_seconds: float
    max_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AskForWork:
    """Record a worker's ask for the scheduler leader to answer (a shared log)."""

    worker_id: str
    max_units: int
    request_id: str
    wait: float
    max_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerAsk:
    ask: WorkRequested
    lease_seconds: float
    even_empty: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveBack:
    grants: tuple[UnitGranted, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportUnits:
    worker_id: str
    reports: Sequence[UnitReport]


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """A worker's check of what it runs; extends its leases unless `extend` is false."""

    worker_id: str
    unit_ids: Sequence[str]
    lease_seconds: float
    extend: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpireLeases:
    """Leases past their deadline, and workers silent for `worker_timeout`: last seen at
    their latest folded sign of life, their latest call to this server (`seen`; now for
    those `polling` now), and never before `since` (this server's start)."""

    worker_timeout: float
    seen: Mapping[str, float]
    polling: Collection[str] = ()
    since: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigurePolicy:
    config: PolicyConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class SettleJobs:
    """Move jobs' state machines on: plan their next units or record their outcome."""

    job_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelNotifications:
    user: str | None
    keys: Sequence[str] = ()
    job_ids: Sequence[str] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Decide:
    """A pure decision of an edge with commands of its own (the pilot manager, the
    notifier): (state, now) -> events."""

    decide: Callable[[ParkState, float], Sequence[Event]]


Command = (
    SubmitJob | CancelJob | ChangeJob | RegisterWorker | RemoveWorker | SetBudget
    | LeaseUnits | AskForWork | AnswerAsk | GiveBack | ReportUnits | Heartbeat
    | ExpireLeases | ConfigurePolicy | SettleJobs | CancelNotifications | Decide
)  # fmt: skip


# -- effects: what the edge must do besides recording the events --------------------------


@dataclass(frozen=True, slots=True)
class ReportsIgnored:
    """Tell the worker these reports did not count (unknown unit, finished job, or
    settled by another report first)."""

    unit_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WorkersExpired:
    """Forget when these workers last called: they left."""

    worker_ids: tuple[str, ...]


Effect = ReportsIgnored | WorkersExpired


class Step(NamedTuple):
    events: list[Event]
    effects: tuple[Effect, ...] = ()


def step(state: ParkState, command: Command, now: float) -> Step:
    """Decide a command on the state: the events to record and the effects to carry out.
    Pure; a command that would change nothing it may not raises a domain error."""
    match command:
        case SubmitJob():
            return Step(
                commands.submit_job(
                    job_id=command.job_id,
                    user=command.user,
                    kind=command.kind,
                    spec=command.spec,
                    priority=command.priority,
                    tags=dict(command.tags),
                    notify=command.notify,
                    now=now,
                    resources=command.resources,
                    max_attempts=command.max_attempts,
                    max_unit_seconds=command.max_unit_seconds,
                    unit_seconds_cap=command.unit_seconds_cap,
                )
            )
        case CancelJob(job_id=job_id, by=by):
            return Step(commands.cancel_job(state, job_id, by=by, now=now))
        case ChangeJob(job_id=job_id, by=by, tags=tags, priority=priority):
            events: list[Event] = []
            if tags is not None:
                events += commands.change_tags(state, job_id, tags, by=by, now=now)
            if priority is not None:
                events += commands.change_priority(state, job_id, priority, by=by, now=now)
            return Step(events)
        case RegisterWorker(worker_id=worker_id, details=details):
            return Step(commands.register_worker(state, worker_id=worker_id, now=now, **details))
        case RemoveWorker(worker_id=worker_id):
            return Step(commands.remove_worker(state, worker_id, now))
        case SetBudget(user=user, credits=credits):
            return Step(commands.set_budget(state, user, credits, now))
        case LeaseUnits():
            return Step(
                commands.lease_units(
                    state,
                    command.worker_id,
                    command.max_units,
                    now=now,
                    lease_seconds=command.lease_seconds,
                    max_seconds=command.max_seconds,
                )
            )
        case AskForWork():
            return Step(
                commands.ask_for_work(
                    state,
                    command.worker_id,
                    command.max_units,
                    request_id=command.request_id,
                    wait=command.wait,
                    now=now,
                    max_seconds=command.max_seconds,
                )
            )
        case AnswerAsk(ask=ask, lease_seconds=lease_seconds, even_empty=even_empty):
            return Step(
                commands.answer_ask(
                    state, ask, now=now, lease_seconds=lease_seconds, even_empty=even_empty
                )
            )
        case GiveBack(grants=grants):
            return Step(commands.give_back(state, grants, now))
        case ReportUnits(worker_id=worker_id, reports=reports):
            events, ignored = commands.report_units(state, worker_id, reports, now=now)
            return Step(events, (ReportsIgnored(tuple(ignored)),) if ignored else ())
        case Heartbeat(worker_id=worker_id, unit_ids=unit_ids, extend=extend):
            if not extend:
                commands.require_worker(state, worker_id)
                return Step([])
            return Step(
                commands.extend_leases(
                    state, worker_id, unit_ids, now=now, lease_seconds=command.lease_seconds
                )
            )
        case ExpireLeases():
            events = commands.expire_leases(state, now)
            seen = {**command.seen, **dict.fromkeys(command.polling, now)}
            events += commands.expire_workers(
                state, now, timeout=command.worker_timeout, seen=seen, since=command.since
            )
            gone = tuple(e.worker_id for e in events if isinstance(e, WorkerExpired))
            return Step(events, (WorkersExpired(gone),) if gone else ())
        case ConfigurePolicy(config=config):
            return Step(commands.configure_policy(state, config, now))
        case SettleJobs(job_ids=job_ids):
            return Step(commands.settle_jobs(state, job_ids, now))
        case CancelNotifications(user=user, keys=keys, job_ids=job_ids):
            return Step(
                commands.cancel_notifications(state, user, keys=keys, job_ids=job_ids, now=now)
            )
        case Decide(decide=decide):
            return Step(list(decide(state, now)))
    raise TypeError(f"not a command: {command!r}")  # pragma: no cover - mypy checks


# -- fold: the projections move on, and say what changed ----------------------------------


@dataclass(frozen=True, slots=True)
class Changes:
    """What a fold changed, for the edge to act on."""

    records: tuple[tuple[int, Event], ...] = ()  # folded now (not those folded before)
    jobs: frozenset[str] = frozenset()  # jobs touched: to settle
    work_available: bool = False  # units queued (planned, split, retried, a lease lost)
    accepted: frozenset[int] = frozenset()  # offsets of the asks' grants the fold accepted
    fold_errors: tuple[FoldError, ...] = ()  # events the fold left out

    @property
    def offset(self) -> int | None:
        return self.records[-1][0] if self.records else None


def fold(state: ParkState, records: Iterable[tuple[int, Event]]) -> Changes:
    """Apply records (offset, event) the state has not folded yet, and say what changed."""
    seen_errors = state.fold_errors
    folded: list[tuple[int, Event]] = []
    jobs: set[str] = set()
    work_available = False
    accepted: set[int] = set()
    for offset, event in records:
        if offset <= state.offset:
            continue
        # Whether a grant answering an ask leases its unit depends on the state before it.
        if (
            isinstance(event, UnitGranted)
            and event.request_id is not None
            and state.accepts_grant(event)
        ):
            accepted.add(offset)
        state.apply(offset, event)
        folded.append((offset, event))
        job_id = job_id_of(event)
        if job_id is not None:
            jobs.add(job_id)
        work_available = work_available or queues_work(event)
    new_errors = state.fold_errors - seen_errors
    errors = tuple(list(state.recent_fold_errors)[-new_errors:]) if new_errors > 0 else ()
    return Changes(tuple(folded), frozenset(jobs), work_available, frozenset(accepted), errors)


_QUEUEING: frozenset[type] = frozenset({UnitsPlanned, UnitsSplit, UnitLeaseExpired})


def queues_work(event: Event) -> bool:
    """Whether folding the event may queue a unit: lease long-polls are woken for it.
    (By exact type: asked of every event folded, and events are never subclassed.)"""
    return type(event) in _QUEUEING or (isinstance(event, UnitFailed) and event.retry)


def follow_up(changes: Changes) -> SettleJobs | None:
    """What must follow a fold: settling the jobs it touched."""
    return SettleJobs(job_ids=tuple(sorted(changes.jobs))) if changes.jobs else None


def continuing(offset: int, records: Sequence[tuple[int, Event]]) -> list[tuple[int, Event]]:
    """The records that continue `offset` without a hole (a shared log read that skipped
    one must never make this server's state differ from the others'): those up to the
    first hole, without those folded already."""
    fresh: list[tuple[int, Event]] = []
    expected = offset + 1
    for at, event in records:
        if at < expected:
            continue
        if at > expected:
            break
        fresh.append((at, event))
        expected += 1
    return fresh


def execute(
    state: ParkState,
    command: Command,
    now: float,
    append: Callable[[Sequence[Event]], Sequence[int]],
    folded: Callable[[Changes], None] | None = None,
) -> Step:
    """Decide, record through `append` (which gives the offsets), fold (telling `folded`
    what changed), and settle the jobs touched until nothing follows: the whole loop for
    a synchronous log (the in-process simulator, property tests). Returns the command's
    own step."""
    first = step(state, command, now)
    events = first.events
    while events:
        changes = fold(state, zip(append(events), events, strict=True))
        if folded is not None:
            folded(changes)
        settle = follow_up(changes)
        events = step(state, settle, now).events if settle is not None else []
    return first


# -- answers read from the folded state -----------------------------------------------------


class LeasedUnit(NamedTuple):
    """A unit handed to a worker, with its job (a tuple: one per unit granted, and a frozen
    dataclass's __init__ costs three times as much)."""

    unit: UnitView
    job: JobView
    lease_deadline: float


def leased_units(state: ParkState, grants: Iterable[Event]) -> list[LeasedUnit]:
    """What a worker is handed for grants recorded and folded: each unit with its job."""
    return [
        LeasedUnit(
            unit=state.units[g.unit_id], job=state.jobs[g.job_id], lease_deadline=g.lease_deadline
        )
        for g in grants
        if isinstance(g, UnitGranted) and g.unit_id in state.units
    ]


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    """The leases' new deadline, and the units the worker must stop (it no longer holds
    them: their job was cancelled, or their lease expired or was revoked)."""

    lease_deadline: float
    stop: list[str]


def heartbeat_answer(
    state: ParkState, worker_id: str, unit_ids: Sequence[str], now: float
) -> HeartbeatAnswer:
    deadline = commands.earliest_deadline(state, worker_id, unit_ids, now)
    return HeartbeatAnswer(deadline, commands.leases_to_stop(state, worker_id, unit_ids))
