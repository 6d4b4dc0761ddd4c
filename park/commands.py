"""Commands: decide(state, command) -> events. Pure: time and ids come in as arguments.

Every command is checked against the current projections; a command that would change
nothing raises a domain error and appends nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, NotRequired, TypedDict, Unpack, get_args
from urllib.parse import urlsplit

from park.domain import MAX_ATTEMPTS_LIMIT, Priority, UnitReport, UnitStatus, WorkerPolicy
from park.errors import Conflict, Forbidden, InvalidRequest, NotFound
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
    NotificationCancelled,
    NotifyRequest,
    NotifyWhen,
    PlannedUnit,
    PolicyConfigured,
    UnitCompleted,
    UnitFailed,
    UnitGranted,
    UnitLeaseExpired,
    UnitsPlanned,
    WorkerExpired,
    WorkerJoined,
    WorkerLeft,
    WorkRequested,
    job_id_of,
)
from park.events.trusted import trusted
from park.kinds import KINDS, SpecError
from park.projections.state import JobView, ParkState, UnitView, WorkerView
from park.scheduler.backups import lease_grants
from park.scheduler.config import PolicyConfig
from park.scheduler.pilots import PilotSpecError, pilot_request
from park.scheduler.policy import Grant, WorkRequest
from park.scheduler.resplit import resplit

# Units one job may plan in one step: each is a row in the unit table and part of one
# event, so an enormous plan would exhaust memory at every start-up.
MAX_UNITS_PLANNED = 100_000
# A unit whose worker has not reported this long after its time limit failed by timing
# out (the worker itself stops it at the limit and says so; this is for a hung worker).
TIME_LIMIT_GRACE = 5.0


# local@domain: no spaces, angle brackets or commas (one address, not a header line);
# domain labels of letters, digits and hyphens.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def parse_notify(value: object) -> NotifyRequest | None:
    """The submission's `notify`: an address (a daily digest to it) or
    `{email?, when?, webhook?}`; refused naming the field at fault."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"email": value}
    if isinstance(value, NotifyRequest):
        value = value.model_dump()
    if not isinstance(value, dict):
        raise InvalidRequest("notify: an e-mail address or {email, when, webhook}", field="notify")
    unknown = sorted(set(value) - {"email", "when", "webhook"})
    if unknown:
        raise InvalidRequest(f"notify.{unknown[0]}: unknown field", field=f"notify.{unknown[0]}")
    email, when, webhook = value.get("email"), value.get("when", "digest"), value.get("webhook")
    if email is not None and (
        not isinstance(email, str) or len(email) > 254 or not _ADDRESS.match(email)
    ):
        raise InvalidRequest(
            f"notify.email: not an e-mail address: {str(email)[:80]!r}", field="notify.email"
        )
    if when not in get_args(NotifyWhen):
        raise InvalidRequest(
            f"notify.when: one of digest, each, never, not {str(when)[:40]!r}", field="notify.when"
        )
    if webhook is not None:
        parts = urlsplit(webhook) if isinstance(webhook, str) and len(webhook) < 2000 else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest(
                f"notify.webhook: not an http(s) URL: {str(webhook)[:80]!r}",
                field="notify.webhook",
            )
    if email is None and webhook is None:
        raise InvalidRequest(
            "notify: give an e-mail address or a webhook (PARKMAIL supplies the address "
            "to the park client)",
            field="notify",
        )
    return NotifyRequest(email=email, when=when, webhook=webhook)


def submit_job(
    *,
    job_id: str,
    user: str,
    kind: str,
    spec: dict[str, Any],
    priority: Priority,
    tags: dict[str, str],
    notify: object,
    now: float,
    resources: dict[str, Any] | None = None,
    max_attempts: int | None = None,
    max_unit_seconds: float | None = None,
    unit_seconds_cap: float | None = None,
) -> list[Event]:
    request = parse_notify(notify)
    email = request.email if request else None
    job_kind = KINDS.get(kind)
    if job_kind is None:
        known = ", ".join(sorted(KINDS))
        raise InvalidRequest(f"kind: unknown job kind {kind!r} (known: {known})", field="kind")
    try:
        normalised = job_kind.parse_spec(spec)
        planned = job_kind.units_to_plan(normalised, job_kind.start(normalised))
    except SpecError as err:
        raise InvalidRequest(str(err), field=err.field) from err
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError, MemoryError) as err:
        # a kind's checks missed something: still the submitter's input, not a server fault
        raise InvalidRequest(f"spec: cannot be used: {err}", field="spec") from err
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise InvalidRequest(
            f"max_attempts: must be from 1 to {MAX_ATTEMPTS_LIMIT}", field="max_attempts"
        )
    if max_unit_seconds is not None and (
        max_unit_seconds <= 0
        or (unit_seconds_cap is not None and max_unit_seconds > unit_seconds_cap)
    ):
        raise InvalidRequest(
            f"max_unit_seconds: must be above 0 and at most {unit_seconds_cap:g} on this server",
            field="max_unit_seconds",
        )
    if planned > MAX_UNITS_PLANNED:
        raise InvalidRequest(
            f"spec: would plan {planned:,} units at once (the limit is "
            f"{MAX_UNITS_PLANNED:,}); put more work in each unit",
            field="spec",
        )
    return [
        JobSubmitted(
            at=now,
            job_id=job_id,
            user=user,
            kind=kind,
            spec=normalised,
            priority=priority,
            tags=tags,
            resources=checked_resources(resources),
            notify=request.email if request else None,
            notification=request if request != NotifyRequest(email=email) else None,
            max_attempts=max_attempts,
            max_unit_seconds=max_unit_seconds,
        )
    ]


def checked_resources(resources: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a job asks of the pool; so far only `pilot`, its own batch pilot."""
    if not resources:
        return None
    unknown = sorted(set(resources) - {"pilot"})
    if unknown:
        raise InvalidRequest(
            f"resources.{unknown[0]}: unknown resource (known: pilot)",
            field=f"resources.{unknown[0]}",
        )
    try:
        request = pilot_request(resources["pilot"])
    except PilotSpecError as err:
        raise InvalidRequest(str(err), field=err.field) from err
    return {"pilot": request.model_dump(mode="json")}


def settle_jobs(state: ParkState, job_ids: Iterable[str], now: float) -> list[Event]:
    """Advance each job's state machine: plan its next units, or record its outcome.

    Run after every change that can move a job on, and over all active jobs at start-up,
    so work a crash interrupted between two appends is picked up again.
    """
    events: list[Event] = []
    for job_id in job_ids:
        job = state.jobs.get(job_id)
        if job is None or not job.active:
            continue
        if job.error is not None:
            events.append(JobFailed(at=now, job_id=job.id, error=job.error))
            continue
        kind = KINDS[job.kind]
        payloads = kind.next_units(job.spec, job.kind_state)
        if payloads:
            first = job.units_total
            units = [  # the kind's own payloads (park/events/trusted.py)
                trusted(PlannedUnit, {"unit_id": f"{job.id}/{first + i}", "payload": p})
                for i, p in enumerate(payloads)
            ]
            events.append(UnitsPlanned(at=now, job_id=job.id, units=units))
            continue
        split = resplit(state, job, now)
        if split:
            events.extend(split)
            continue
        finished = kind.outcome(job.spec, job.kind_state)
        if finished is not None:
            if finished.error is not None:
                events.append(JobFailed(at=now, job_id=job.id, error=finished.error))
            else:
                events.append(JobCompleted(at=now, job_id=job.id, result=finished.result))
    return events


def require_job(state: ParkState, job_id: str) -> JobView:
    job = state.jobs.get(job_id)
    if job is None:
        raise NotFound(f"job_id: no job {job_id!r}", field="job_id")
    return job


def require_owner(job: JobView, user: str | None) -> None:
    if user is not None and user != job.user:
        raise Forbidden(f"job {job.id!r} belongs to another user")


def cancel_job(state: ParkState, job_id: str, *, by: str | None, now: float) -> list[Event]:
    job = require_job(state, job_id)
    require_owner(job, by)
    if not job.active:
        raise Conflict(f"job {job_id!r} is already {job.status}")
    return [JobCancelled(at=now, job_id=job_id, by=by or job.user)]


def change_priority(
    state: ParkState, job_id: str, priority: Priority, *, by: str | None, now: float
) -> list[Event]:
    job = require_job(state, job_id)
    require_owner(job, by)
    if not job.active:
        raise Conflict(f"job {job_id!r} is already {job.status}")
    if job.priority is priority:
        return []
    return [JobPriorityChanged(at=now, job_id=job_id, priority=priority)]


def change_tags(
    state: ParkState, job_id: str, tags: dict[str, str | None], *, by: str | None, now: float
) -> list[Event]:
    job = require_job(state, job_id)
    require_owner(job, by)
    if "user" in tags:
        raise InvalidRequest("tags.user: the user tag cannot be changed", field="tags.user")
    changes = {k: v for k, v in tags.items() if job.tags.get(k) != v}
    if not changes:
        return []
    return [JobTagsChanged(at=now, job_id=job_id, tags=changes)]


class WorkerDetails(TypedDict):
    """What a worker says of itself when it registers (the one list of these keywords:
    the service's `register_worker` takes them as they are)."""

    name: str
    cpus: int
    owner: NotRequired[str | None]
    policy: NotRequired[WorkerPolicy]
    job_id: NotRequired[str | None]
    registered_by: NotRequired[str | None]
    pilot_id: NotRequired[str | None]
    until: NotRequired[float | None]
    allowed: NotRequired[Sequence[str] | None]


def register_worker(
    state: ParkState, *, worker_id: str, now: float, **details: Unpack[WorkerDetails]
) -> list[Event]:
    owner, job_id = details.get("owner"), details.get("job_id")
    policy = details.get("policy", WorkerPolicy.ANY)
    if policy in (WorkerPolicy.OWN_ONLY, WorkerPolicy.OWN_FIRST) and not owner:
        raise InvalidRequest(f"owner: policy {policy} needs an owner", field="owner")
    if policy is WorkerPolicy.JOB:
        if not job_id:
            raise InvalidRequest("job: policy 'job' needs a job id", field="job")
        if job_id not in state.jobs:
            raise NotFound(f"job: no job {job_id!r}", field="job")
    allowed = details.get("allowed")
    return [
        WorkerJoined(
            at=now,
            worker_id=worker_id,
            name=details["name"],
            cpus=details["cpus"],
            owner=owner,
            policy=policy,
            job_id=job_id,
            registered_by=details.get("registered_by"),
            pilot_id=details.get("pilot_id"),
            until=details.get("until"),
            allowed=list(allowed) if allowed is not None else None,
        )
    ]


def require_worker(state: ParkState, worker_id: str) -> WorkerView:
    worker = state.workers.get(worker_id)
    if worker is None:
        raise NotFound(f"worker_id: no worker {worker_id!r}", field="worker_id")
    if not worker.active:
        raise Conflict(f"worker {worker_id!r} has left; register again")
    return worker


def expire_workers(
    state: ParkState, now: float, *, timeout: float, seen: dict[str, float], since: float
) -> list[Event]:
    """Workers silent for `timeout` seconds leave: their leases are given back, then a
    `worker.expired`. A worker was last seen at its latest folded sign of life, or its
    latest call to this server (`seen`), and not before `since` (this server's start: a
    restart gives every worker a full timeout to come back)."""
    events: list[Event] = []
    for worker in state.workers.values():
        if not worker.active:
            continue
        last = max(worker.last_seen, seen.get(worker.id, since), since)
        if now - last < timeout:
            continue
        events.extend(
            UnitLeaseExpired(at=now, unit_id=u, job_id=state.units[u].job_id, worker_id=worker.id)
            for u in sorted(worker.units)
        )
        events.append(WorkerExpired(at=now, worker_id=worker.id, last_seen=last))
    return events


def remove_worker(state: ParkState, worker_id: str, now: float) -> list[Event]:
    """A worker leaving gives its leases back at once instead of letting them run out."""
    worker = require_worker(state, worker_id)
    events: list[Event] = [
        UnitLeaseExpired(at=now, unit_id=u, job_id=state.units[u].job_id, worker_id=worker.id)
        for u in sorted(worker.units)
    ]
    events.append(WorkerLeft(at=now, worker_id=worker_id))
    return events


def lease_units(
    state: ParkState,
    worker_id: str,
    max_units: int,
    *,
    now: float,
    lease_seconds: float,
    max_seconds: float | None = None,
) -> list[Event]:
    """The request and the grants that answer it, all as events (replay re-runs it)."""
    require_worker(state, worker_id)
    request = WorkRequest(worker_id, max_units, now, max_seconds)
    grants = lease_grants(state, request)
    if not grants:
        return []
    events: list[Event] = [
        WorkRequested(at=now, worker_id=worker_id, max_units=max_units, max_seconds=max_seconds)
    ]
    events.extend(grant_events(state, worker_id, grants, now=now, lease_seconds=lease_seconds))
    return events


def ask_for_work(
    state: ParkState,
    worker_id: str,
    max_units: int,
    *,
    request_id: str,
    wait: float,
    now: float,
    max_seconds: float | None = None,
) -> list[Event]:
    """With a shared log, an API server does not grant: it records the worker's ask, and
    the scheduler leader answers it (`answer_ask`) when it has work for the worker."""
    require_worker(state, worker_id)
    return [
        WorkRequested(
            at=now,
            worker_id=worker_id,
            max_units=max_units,
            max_seconds=max_seconds,
            request_id=request_id,
            pending=True,
            wait=wait,
        )
    ]


def answer_ask(
    state: ParkState, ask: WorkRequested, *, now: float, lease_seconds: float, even_empty: bool
) -> list[Event]:
    """The scheduler leader's decision on an open ask, made now: the request as decided
    (same `request_id`, `granted` = how many grants follow) and its grants. Nothing when
    there is no work, unless `even_empty` (an ask that cannot wait is told so)."""
    worker = state.workers.get(ask.worker_id)
    if worker is None or not worker.active:
        return []
    grants = lease_grants(state, WorkRequest(ask.worker_id, ask.max_units, now, ask.max_seconds))
    if not grants and not even_empty:
        return []
    events: list[Event] = [
        WorkRequested(
            at=now,
            worker_id=ask.worker_id,
            max_units=ask.max_units,
            max_seconds=ask.max_seconds,
            request_id=ask.request_id,
            granted=len(grants),
            basis=state.offset,
        )
    ]
    events.extend(
        grant_events(
            state,
            ask.worker_id,
            grants,
            now=now,
            lease_seconds=lease_seconds,
            request_id=ask.request_id,
        )
    )
    return events


def give_back(state: ParkState, grants: Iterable[UnitGranted], now: float) -> list[Event]:
    """Leases granted to an ask whose worker stopped waiting before the answer came: the
    worker never learns of them, so they are given back at once rather than left to run
    out. Only leases that are still exactly those grants."""
    events: list[Event] = []
    for g in grants:
        unit = state.units.get(g.unit_id)
        if unit is None or unit.status is not UnitStatus.LEASED:
            continue
        if (
            g.backup and unit.backup_worker_id == g.worker_id and unit.backup_granted_at == g.at
        ) or (
            not g.backup and unit.worker_id == g.worker_id and unit.holders[-1:] == [g.worker_id]
        ):
            events.append(
                UnitLeaseExpired(at=now, unit_id=g.unit_id, job_id=g.job_id, worker_id=g.worker_id)
            )
    return events


def unit_time_limit(state: ParkState, job: JobView) -> float:
    """How long each of the job's units may run: what the job asked, else its kind's
    default, never more than the policy's cap."""
    wanted = job.max_unit_seconds or KINDS[job.kind].default_unit_seconds
    return min(wanted, state.policy.max_unit_seconds)


def grant_events(
    state: ParkState,
    worker_id: str,
    grants: Sequence[Grant],
    *,
    now: float,
    lease_seconds: float,
    request_id: str | None = None,
) -> list[UnitGranted]:
    policy = state.policy
    events = []
    for g in grants:
        limit = unit_time_limit(state, state.jobs[g.job_id])
        unit = state.units[g.unit_id]
        if g.backup:  # at the unit's own price, nothing reserved: charged if it wins
            priority, price, reserved = unit.priority, unit.price, 0.0
        else:
            price = policy.price(g.priority)
            priority, reserved = g.priority, price * policy.reserve_seconds
        if not (math.isfinite(g.vstart) and math.isfinite(g.vpass)):  # as validation would
            raise ValueError(f"unit {g.unit_id}: virtual time {g.vstart} -> {g.vpass}")
        events.append(
            trusted(  # every field, in order (park/events/trusted.py)
                UnitGranted,
                {
                    "v": 1,
                    "at": float(now),
                    "type": "unit.granted",
                    "unit_id": g.unit_id,
                    "job_id": g.job_id,
                    "worker_id": worker_id,
                    "lease_deadline": float(now + min(lease_seconds, limit + TIME_LIMIT_GRACE)),
                    "priority": priority,
                    "price": float(price),
                    "reserved": float(reserved),
                    "vstart": float(g.vstart),
                    "vpass": float(g.vpass),
                    "request_id": request_id,
                    "attempt": unit.attempts + 1,
                    "time_limit": float(limit),
                    "backup": g.backup,
                },
            )
        )
    return events


def configure_policy(state: ParkState, config: PolicyConfig, now: float) -> list[Event]:
    if state.policy == config:
        return []
    return [PolicyConfigured(at=now, config=config.model_dump(mode="json"))]


def set_budget(state: ParkState, user: str, credits: float | None, now: float) -> list[Event]:
    if credits is not None and credits < 0:
        raise InvalidRequest("credits: a budget cannot be negative", field="credits")
    return [BudgetSet(at=now, user=user, credits=credits)]


def report_units(
    state: ParkState, worker_id: str, reports: Sequence[UnitReport], *, now: float
) -> tuple[list[Event], list[str]]:
    """Events for the reports that still count, and the ids of those ignored (unknown unit,
    finished job, or a unit another report already settled: the first report wins)."""
    require_worker(state, worker_id)
    events: list[Event] = []
    ignored: list[str] = []
    seen: set[str] = set()
    for r in reports:
        unit = state.units.get(r.unit_id)
        if (
            unit is None
            or r.unit_id in seen
            or unit.status not in (UnitStatus.LEASED, UnitStatus.QUEUED)
            or worker_id not in unit.holders
        ):
            ignored.append(r.unit_id)
            continue
        seen.add(r.unit_id)
        job = state.jobs[unit.job_id]
        problem = (
            KINDS[job.kind].check_result(job.kind_state, unit.payload, r.result) if r.ok else None
        )
        if problem is not None:
            r = UnitReport(r.unit_id, False, None, f"the result does not fit the unit: {problem}")
        if r.ok:
            cpu = max(0.0, r.cpu_seconds)
            wall = max(0.0, r.wall_seconds)
            slot = slot_seconds(unit, worker_id, wall, cpu, now)
            events.append(
                trusted(  # every field, in order; the result validated as the report's
                    UnitCompleted,
                    {
                        "v": 1,
                        "at": float(now),
                        "type": "unit.completed",
                        "unit_id": unit.id,
                        "job_id": unit.job_id,
                        "worker_id": worker_id,
                        "result": r.result,
                        "cpu_seconds": float(cpu),
                        "charged": float(slot * unit.price),
                        "wall_seconds": float(wall),
                        "slot_seconds": float(slot),
                    },
                )
            )
        elif unit.status is UnitStatus.LEASED and worker_id in (
            unit.worker_id,
            unit.backup_worker_id,
        ):
            events.append(failed(state, unit, r.error or "unit failed", now=now, by=worker_id))
        else:
            ignored.append(r.unit_id)
    return events, ignored


def slot_seconds(unit: UnitView, worker_id: str, wall: float, cpu: float, now: float) -> float:
    """The time a unit held a worker's CPU, as charged (Slurm and HTCondor charge the
    allocation, not the CPU used): its wall time (its CPU time if it gave none), never
    more than the reporting attempt (current or backup) held its lease."""
    held = max(wall, cpu)
    since = attempt_of(unit, worker_id).granted_at
    if since is not None:
        held = min(held, max(0.0, now - since))
    return held


class Attempt(NamedTuple):
    """A worker's running attempt of a unit: when it was granted, when its lease ends."""

    granted_at: float | None
    deadline: float | None


def attempt_of(unit: UnitView, worker_id: str) -> Attempt:
    """This worker's running attempt of the unit: the current one or the backup (all
    None when it runs none)."""
    if unit.worker_id == worker_id:
        return Attempt(unit.granted_at, unit.lease_deadline)
    if unit.backup_worker_id == worker_id:
        return Attempt(unit.backup_granted_at, unit.backup_deadline)
    return Attempt(None, None)


def failed(
    state: ParkState,
    unit: UnitView,
    error: str,
    *,
    now: float,
    timed_out: bool = False,
    by: str | None = None,
) -> UnitFailed:
    """An attempt of a leased unit failed (`by` its worker; the current holder if not
    said): queued again unless it has failed the job's `max_attempts` times. A backup
    attempt's failure never ends the unit: its other attempt runs on."""
    job = state.jobs[unit.job_id]
    worker_id = by if by is not None else unit.worker_id or ""
    backup = worker_id == unit.backup_worker_id
    return UnitFailed(
        at=now,
        unit_id=unit.id,
        job_id=unit.job_id,
        worker_id=worker_id,
        error=error,
        attempt=unit.attempts,
        retry=backup or unit.failures + 1 < job.max_attempts,
        timed_out=timed_out,
    )


def extend_leases(
    state: ParkState, worker_id: str, unit_ids: Sequence[str], *, now: float, lease_seconds: float
) -> list[Event]:
    """Extend the leases of the listed units this worker holds, each to `lease_seconds`
    from now but never past its time limit (plus grace)."""
    worker = require_worker(state, worker_id)
    by_deadline: dict[float, list[str]] = {}
    for unit_id in sorted(set(unit_ids) & worker.units):
        unit = state.units[unit_id]
        deadline = now + lease_seconds
        since, current = attempt_of(unit, worker_id)
        if unit.time_limit is not None and since is not None:
            deadline = min(deadline, since + unit.time_limit + TIME_LIMIT_GRACE)
        if deadline > (current or 0.0):
            by_deadline.setdefault(deadline, []).append(unit_id)
    return [
        LeaseExtended(at=now, worker_id=worker_id, unit_ids=held, lease_deadline=deadline)
        for deadline, held in sorted(by_deadline.items())
    ]


def earliest_deadline(
    state: ParkState, worker_id: str, unit_ids: Sequence[str], now: float
) -> float:
    """The soonest deadline of the leases this worker holds of these units (`now` if
    none): what a heartbeat's answer says."""
    worker = state.workers.get(worker_id)
    mine = worker.units if worker is not None else set()
    deadlines = (attempt_of(state.units[u], worker_id).deadline for u in unit_ids if u in mine)
    return min((d for d in deadlines if d is not None), default=now)


def leases_to_stop(state: ParkState, worker_id: str, unit_ids: Sequence[str]) -> list[str]:
    """Of the units a worker says it runs, those it no longer holds (its job cancelled or
    finished, its lease expired or given to another): the worker stops them."""
    worker = state.workers.get(worker_id)
    held = worker.units if worker is not None and worker.active else set()
    return sorted(u for u in set(unit_ids) if u not in held)


def expire_leases(state: ParkState, now: float) -> list[Event]:
    """Leases past their deadline: a unit past its time limit failed by timing out (an
    attempt), any other lease was lost (the unit is queued again, no attempt counted)."""
    events: list[Event] = []
    for unit_id, deadline in state.leased.items():
        if deadline <= now:
            unit = state.units[unit_id]
            limit = unit.time_limit
            if (
                limit is not None
                and unit.granted_at is not None
                and deadline >= unit.granted_at + limit
            ):
                error = f"ran out of time: no result within max_unit_seconds={limit:g}"
                events.append(failed(state, unit, error, now=now, timed_out=True))
                continue
            events.append(
                UnitLeaseExpired(
                    at=now, unit_id=unit_id, job_id=unit.job_id, worker_id=unit.worker_id or ""
                )
            )
    for unit_id, deadline in state.backup_leased.items():
        if deadline <= now:  # a backup attempt: let go, or failed by running out of time
            unit = state.units[unit_id]
            holder, since, limit = (
                unit.backup_worker_id or "",
                unit.backup_granted_at,
                unit.time_limit,
            )
            if limit is not None and since is not None and deadline >= since + limit:
                error = f"ran out of time: no result within max_unit_seconds={limit:g}"
                events.append(failed(state, unit, error, now=now, timed_out=True, by=holder))
                continue
            events.append(
                UnitLeaseExpired(at=now, unit_id=unit_id, job_id=unit.job_id, worker_id=holder)
            )
    return events


def jobs_touched(events: Iterable[Event]) -> set[str]:
    return {job_id for e in events if (job_id := job_id_of(e)) is not None}


def cancel_notifications(
    state: ParkState, user: str | None, *, keys: Sequence[str], job_ids: Sequence[str], now: float
) -> list[Event]:
    """Stop a user's own pending notices (by key) and a job's notices (by job id); `user`
    None (no tokens) acts as the owner of what it names."""
    book = state.notices
    owner: str | None = user
    for key in keys:
        notice = book.notices.get(key)
        if notice is None:
            raise NotFound(f"keys: no notification {key!r}", field="keys")
        if user is not None and notice.user != user:
            raise Forbidden(f"notification {key!r} belongs to another user")
        if not notice.open:
            raise Conflict(f"notification {key!r} is already {notice.status}")
        owner = notice.user
    for job_id in job_ids:
        job = require_job(state, job_id)
        require_owner(job, user)
        owner = job.user
    if owner is None:
        raise InvalidRequest("body: name notifications (keys) or jobs (job_ids)", field="body")
    return [NotificationCancelled(at=now, by=owner, keys=list(keys), job_ids=list(job_ids))]
