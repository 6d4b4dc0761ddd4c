"""The event schema: every fact park records, as frozen pydantic models in one union.

Each event names its `type` (the discriminator), its schema version `v`, the writer's
timestamp `at` (seconds since the epoch; the only clock the folds ever see) and the ids it
concerns. The log assigns offsets; events never carry their own.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from park.domain import Priority, WorkerPolicy
from park.events.upcasting import UPCASTERS, is_old, upcast

JsonValue = Any


def _unset(value: object) -> bool:
    """Fields added for Kafka mode are written only when set (None, False or a zero wait
    are their defaults)."""
    return value is None or value is False


class EventBase(BaseModel):
    # No NaN or infinity: JSON has no way to write them, so they could not be read back.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    v: int = 1
    at: float


NotifyWhen = Literal["digest", "each", "never"]


class NotifyRequest(BaseModel):
    """What a submitter asked to hear about its job's end: an e-mail address and/or a
    webhook, and when (`digest`: one message per address per day; `each`: one per job;
    `never`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: str | None = None
    when: NotifyWhen = "digest"
    webhook: str | None = None


class JobSubmitted(EventBase):
    """`notify` is the e-mail address to notify (a daily digest, unless `notification`
    says otherwise); `notification` is written only when more was asked (another `when`,
    a webhook), so older readers still read the address."""

    type: Literal["job.submitted"] = "job.submitted"
    job_id: str
    user: str
    kind: str
    spec: dict[str, JsonValue]
    priority: Priority = Priority.FREE
    tags: dict[str, str] = Field(default_factory=dict)
    notify: str | None = None
    # What the job asks of the pool, e.g. {"pilot": {...}}: its own batch pilot.
    resources: dict[str, JsonValue] | None = Field(default=None, exclude_if=_unset)
    notification: NotifyRequest | None = Field(default=None, exclude_if=_unset)
    # How often a unit may fail before the job fails, and how long a unit may run
    # (None: the defaults; written only when given).
    max_attempts: int | None = Field(default=None, exclude_if=_unset)
    max_unit_seconds: float | None = Field(default=None, exclude_if=_unset)

    @property
    def notify_request(self) -> NotifyRequest | None:
        if self.notification is not None:
            return self.notification
        return NotifyRequest(email=self.notify) if self.notify else None


class PlannedUnit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    unit_id: str
    payload: dict[str, JsonValue]


class UnitsPlanned(EventBase):
    """A job kind cut more of its work into units (all at once for `map`, per generation
    for iterative kinds)."""

    type: Literal["units.planned"] = "units.planned"
    job_id: str
    units: list[PlannedUnit]


class UnitsSplit(EventBase):
    """A queued unit, never granted, cut into smaller units doing the same work, because
    the pool had more idle worker slots than queued units (multistart starts, scan grid
    ranges): `unit_id` leaves its job's queue and unit table, and `units` take its place
    in the queue, in order."""

    type: Literal["units.split"] = "units.split"
    job_id: str
    unit_id: str
    units: list[PlannedUnit]


class JobPriorityChanged(EventBase):
    type: Literal["job.priority_changed"] = "job.priority_changed"
    job_id: str
    priority: Priority


class JobTagsChanged(EventBase):
    """Tags set (or, with None, removed); the `user` tag is identity and never changes."""

    type: Literal["job.tags_changed"] = "job.tags_changed"
    job_id: str
    tags: dict[str, str | None]


class JobCancelled(EventBase):
    type: Literal["job.cancelled"] = "job.cancelled"
    job_id: str
    by: str


class JobCompleted(EventBase):
    type: Literal["job.completed"] = "job.completed"
    job_id: str
    result: JsonValue


class JobFailed(EventBase):
    type: Literal["job.failed"] = "job.failed"
    job_id: str
    error: str


class WorkerJoined(EventBase):
    type: Literal["worker.joined"] = "worker.joined"
    worker_id: str
    name: str
    cpus: int
    owner: str | None = None
    policy: WorkerPolicy = WorkerPolicy.ANY
    job_id: str | None = None
    registered_by: str | None = None  # the token's user, when the server has tokens
    # A worker inside a batch pilot: the pilot's id, and the end of its allocation.
    pilot_id: str | None = Field(default=None, exclude_if=_unset)
    until: float | None = Field(default=None, exclude_if=_unset)
    # The worker's allow list (`module:function` patterns) as it announced it; None: it
    # announced none (an older agent), so the policy does not route by it.
    allowed: list[str] | None = Field(default=None, exclude_if=_unset)


class WorkerLeft(EventBase):
    type: Literal["worker.left"] = "worker.left"
    worker_id: str


class WorkerExpired(EventBase):
    """A worker silent for longer than the server's worker timeout: it no longer counts
    as active (its leases are given back by `unit.lease_expired` events before this)."""

    type: Literal["worker.expired"] = "worker.expired"
    worker_id: str
    last_seen: float


class WorkRequested(EventBase):
    """A worker asked for work; the grants that answer it follow it on the log, so replay
    can re-run the policy on exactly this request.

    With several API servers (Kafka), only the scheduler leader grants: an API server
    records the worker's ask (`pending`, with a `request_id` and how long the worker
    `wait`s), and the leader, when it has work for it, records the decision as a second
    `work.requested` with the same `request_id`, `granted` (the number of grants that
    follow it) and `basis`: the offset of the state it decided on, since other servers'
    events may land between the decision and its record. Replay re-runs the policy on
    decisions only, each on the state it was made on."""

    type: Literal["work.requested"] = "work.requested"
    worker_id: str
    max_units: int
    max_seconds: float | None = None
    # Kafka mode only; left out of the JSON when unset, so a single server's log reads as
    # before (also by an older park).
    request_id: str | None = Field(default=None, exclude_if=_unset)
    pending: bool = Field(default=False, exclude_if=_unset)
    wait: float = Field(default=0.0, exclude_if=lambda wait: wait == 0.0)
    granted: int | None = Field(default=None, exclude_if=_unset)
    basis: int | None = Field(default=None, exclude_if=_unset)


class UnitGranted(EventBase):
    """A lease. `priority` is the one charged (a spent budget demotes paid work to free);
    `price` per core-second is fixed here and `reserved` is held until the unit settles;
    `vstart`/`vpass` are the job's virtual time before and after this grant; `request_id`
    names the worker's ask it answers (Kafka mode); `attempt` counts the unit's grants
    (1 for its first); `time_limit` is how long the unit may run, in seconds. A `backup`
    grant is a second attempt of a unit still leased to another worker (a straggler, run
    again by an idle worker): it reserves nothing, and the first report of either counts."""

    type: Literal["unit.granted"] = "unit.granted"
    unit_id: str
    job_id: str
    worker_id: str
    lease_deadline: float
    priority: Priority = Priority.FREE
    price: float
    reserved: float
    vstart: float = 0.0
    vpass: float = 0.0
    request_id: str | None = Field(default=None, exclude_if=_unset)  # Kafka mode only
    attempt: int = Field(default=0, exclude_if=lambda attempt: attempt == 0)
    time_limit: float | None = Field(default=None, exclude_if=_unset)
    backup: bool = Field(default=False, exclude_if=_unset)


class LeaseExtended(EventBase):
    type: Literal["lease.extended"] = "lease.extended"
    worker_id: str
    unit_ids: list[str]
    lease_deadline: float


class UnitCompleted(EventBase):
    type: Literal["unit.completed"] = "unit.completed"
    unit_id: str
    job_id: str
    worker_id: str
    result: JsonValue
    cpu_seconds: float
    charged: float
    wall_seconds: float = 0.0
    # The time the unit held a worker's CPU (what is charged): its wall time, at most the
    # time from grant to report.
    slot_seconds: float = Field(default=0.0, exclude_if=lambda seconds: seconds == 0.0)


class UnitFailed(EventBase):
    """An attempt failed (the function raised, the worker refused it, or it ran out of
    time). With `retry` the unit is queued again, else the job fails."""

    type: Literal["unit.failed"] = "unit.failed"
    unit_id: str
    job_id: str
    worker_id: str
    error: str
    attempt: int = Field(default=0, exclude_if=lambda attempt: attempt == 0)
    retry: bool = Field(default=False, exclude_if=_unset)
    timed_out: bool = Field(default=False, exclude_if=_unset)


class UnitLeaseExpired(EventBase):
    type: Literal["unit.lease_expired"] = "unit.lease_expired"
    unit_id: str
    job_id: str
    worker_id: str


class PolicyConfigured(EventBase):
    """The scheduling and price configuration in force from here on."""

    type: Literal["policy.configured"] = "policy.configured"
    config: dict[str, JsonValue]


class BudgetSet(EventBase):
    """A user's credit budget (None: unlimited). Spent, it demotes paid work to free."""

    type: Literal["budget.set"] = "budget.set"
    user: str
    credits: float | None


class PilotSubmitted(EventBase):
    """A pilot handed to a batch system (`batch_id` its job id there): a batch job that
    starts one park worker per node. `job_id`: a private pilot, whose workers serve only
    that job; `reason`: why it was submitted (who asked, or the adaptive pool's reason)."""

    type: Literal["pilot.submitted"] = "pilot.submitted"
    pilot_id: str
    scheduler: str
    batch_id: str
    request: dict[str, JsonValue]
    job_id: str | None = None
    user: str | None = None
    pool: bool = False
    reason: str = ""


class PilotStateChanged(EventBase):
    """What the batch system says of a pilot: queued, running, ended, failed or cancelled,
    with its reason (a queue's `Priority`/`Resources`, an exit code, who cancelled)."""

    type: Literal["pilot.state_changed"] = "pilot.state_changed"
    pilot_id: str
    state: str
    reason: str = ""
    queue: str | None = None


class PoolDecided(EventBase):
    """The adaptive pool's decision, made on the state at offset `basis` with `config`:
    `grow` (a pilot follows) or `release` (pilot `pilot_id` is let go), and why. Replay
    re-runs the decision on that state."""

    type: Literal["pool.decided"] = "pool.decided"
    action: str
    pilot_id: str
    reason: str
    basis: int
    config: dict[str, JsonValue]


NotifyChannel = Literal["email", "webhook"]


class NotificationAttempted(EventBase):
    """A notifier is about to send notice `key` (its idempotency key, from which the
    Message-ID derives): recorded BEFORE sending, so a crash after it is seen by the next
    notifier. `attempt` numbers the tries; the fold accepts only the next number, so of
    two notifiers racing for one notice exactly one holds it, until `deadline`. The first
    attempt of a digest creates it and fixes its content (`job_ids`, `slot`)."""

    type: Literal["notification.attempted"] = "notification.attempted"
    key: str
    attempt: int
    by: str
    deadline: float
    channel: NotifyChannel
    target: str
    user: str
    job_ids: list[str]
    slot: float | None = None


class NotificationSent(EventBase):
    """The SMTP server (or webhook receiver) accepted notice `key`."""

    type: Literal["notification.sent"] = "notification.sent"
    key: str
    attempt: int
    by: str


class NotificationFailed(EventBase):
    """Attempt `attempt` of notice `key` failed; the next is due at `retry_at`."""

    type: Literal["notification.failed"] = "notification.failed"
    key: str
    attempt: int
    by: str
    error: str
    retry_at: float


class NotificationCancelled(EventBase):
    """A user stopped pending notifications: notices by key, and jobs (their `each`
    notices, and their place in a coming digest)."""

    type: Literal["notification.cancelled"] = "notification.cancelled"
    by: str
    keys: list[str] = Field(default_factory=list)
    job_ids: list[str] = Field(default_factory=list)


Event = Annotated[
    JobSubmitted
    | UnitsPlanned
    | UnitsSplit
    | JobPriorityChanged
    | JobTagsChanged
    | JobCancelled
    | JobCompleted
    | JobFailed
    | WorkerJoined
    | WorkerLeft
    | WorkerExpired
    | WorkRequested
    | UnitGranted
    | LeaseExtended
    | UnitCompleted
    | UnitFailed
    | UnitLeaseExpired
    | PolicyConfigured
    | BudgetSet
    | PilotSubmitted
    | PilotStateChanged
    | PoolDecided
    | NotificationAttempted
    | NotificationSent
    | NotificationFailed
    | NotificationCancelled,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_from_json(data: str | bytes) -> Event:
    """Decode one stored event, upcast to the current version of its type (every log
    reads through here). Current documents take the direct path."""
    try:
        event = EVENT_ADAPTER.validate_json(data)
    except ValidationError:
        if not UPCASTERS:
            raise
        return _upcast_json(data)
    if is_old(event.type, event.v):
        return _upcast_json(data)
    return event


def event_from_document(document: dict[str, Any]) -> Event:
    """Decode one event already parsed from JSON, upcast like `event_from_json`."""
    return EVENT_ADAPTER.validate_python(upcast(document))


def _upcast_json(data: str | bytes) -> Event:
    document = json.loads(data)
    if not isinstance(document, dict):
        return EVENT_ADAPTER.validate_json(data)  # raises, naming the problem
    return event_from_document(document)


def event_to_json(event: EventBase) -> str:
    """The event's JSON, as `model_dump_json()` writes it, through the serializer itself
    (its keyword handling is ~1.4 µs an event, two events per unit run)."""
    return event.__pydantic_serializer__.to_json(event).decode()


def job_id_of(event: EventBase) -> str | None:
    """The job an event concerns, if any."""
    return getattr(event, "job_id", None)
