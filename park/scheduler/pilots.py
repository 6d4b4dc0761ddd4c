"""Pilots, decided: what a pilot asks of a batch queue, and the adaptive pool's choices.

Pure like the grant policy: the state and `now` come in, decisions come out, so the
server records each decision as an event and `park replay --verify` re-runs it on the
state it was made on. The edge (park/batch) turns decisions into `sbatch`/`scancel`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from park.domain import WorkerPolicy
from park.errors import Conflict, InvalidRequest, NotFound
from park.events.schema import Event, PilotStateChanged, PilotSubmitted
from park.projections.pilots import PILOT_STATES
from park.projections.state import JobView, ParkState

SCHEDULERS = ("slurm", "pbs")
_CLOCK = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+)$")


def parse_walltime(value: Any) -> int:
    """Seconds from `HH:MM:SS`, `MM:SS`, `SS` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("walltime: expected HH:MM:SS or seconds")
    if isinstance(value, int | float):
        seconds = int(value)
    else:
        match = _CLOCK.match(str(value).strip())
        if match is None:
            raise ValueError(f"walltime: expected HH:MM:SS or seconds, not {value!r}")
        hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise ValueError("walltime: must be positive")
    return seconds


def format_walltime(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _known_scheduler(value: str) -> str:
    if value not in SCHEDULERS:
        raise ValueError(f"must be one of {', '.join(SCHEDULERS)}")
    return value


Scheduler = Annotated[str, AfterValidator(_known_scheduler)]
Walltime = Annotated[int, BeforeValidator(parse_walltime)]


class PilotRequest(BaseModel):
    """What a pilot asks of the batch queue. `walltime` in seconds (given as HH:MM:SS or
    seconds); `extra`: directives passed through as they are (`--mem=4G`, `-l mem=4gb`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheduler: Scheduler = "slurm"
    nodes: int = Field(default=1, ge=1, le=10_000)
    cpus_per_node: int = Field(default=1, ge=1, le=4096)
    walltime: Walltime = 3600
    queue: str | None = Field(default=None, max_length=200)
    account: str | None = Field(default=None, max_length=200)
    extra: list[str] = Field(default_factory=list)

    @field_validator("extra", mode="before")
    @classmethod
    def _extra(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("queue", "account")
    @classmethod
    def _word(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.@+-]+", value):
            raise ValueError("letters, digits and . _ - + @ only")
        return value

    @field_validator("extra")
    @classmethod
    def _one_line(cls, value: list[str]) -> list[str]:
        if any("\n" in d or "\r" in d for d in value):
            raise ValueError("a directive is one line")
        return value


class PilotSpecError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def pilot_request(data: Any, field: str = "resources.pilot") -> PilotRequest:
    """A pilot request from JSON, or a `PilotSpecError` naming the bad field."""
    try:
        return PilotRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join([field, *(str(p) for p in first["loc"])])
        raise PilotSpecError(f"{where}: {first['msg']}", where) from err


def parse_options(text: str) -> tuple[str, dict[str, str]]:
    """`slurm:nodes=2,walltime=1:00:00` -> ("slurm", {"nodes": "2", ...}); dashes in
    keys become underscores."""
    scheduler, _, rest = text.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}: expected KEY=VALUE")
        options[key.strip().replace("-", "_")] = value.strip()
    return scheduler.strip(), options


def pilot_request_from_text(text: str) -> PilotRequest:
    """`park submit --pilot slurm:nodes=2,walltime=1:00:00,queue=debug`."""
    scheduler, options = parse_options(text)
    if "cpus" in options:
        options["cpus_per_node"] = options.pop("cpus")
    extra = options.pop("extra", None)
    data: dict[str, Any] = {"scheduler": scheduler, **options}
    if extra:
        data["extra"] = [extra]
    return pilot_request(data, "pilot")


def job_pilot_request(job: JobView) -> PilotRequest | None:
    """The private pilot a job asked for (checked at submission)."""
    wanted = (job.resources or {}).get("pilot")
    return None if wanted is None else PilotRequest.model_validate(wanted)


# -- private pilots -----------------------------------------------------------------------

MAX_PILOTS_PER_JOB = 20


def private_pilots_due(state: ParkState) -> list[JobView]:
    """Jobs that asked for a pilot of their own, have queued units, and have no live
    pilot: the previous one ended (its wall time ran out) or none was submitted yet. A job
    whose pilot could not even be submitted, or that used up its pilots, gets no more."""
    due = []
    for job_id in sorted(state.runnable):
        job = state.jobs[job_id]
        if not job.resources or "pilot" not in job.resources:
            continue
        mine = [p for p in state.pilots.values() if p.job_id == job_id]
        if any(p.live for p in mine) or len(mine) >= MAX_PILOTS_PER_JOB:
            continue
        if any(p.state == "failed" and p.started_at is None for p in mine):
            continue
        due.append(job)
    return due


def private_pilots_done(state: ParkState) -> list[str]:
    """Live private pilots whose job has finished (completed, failed or cancelled)."""
    return sorted(
        p.id
        for p in state.pilots.values()
        if p.live and p.job_id is not None and not _job_active(state, p.job_id)
    )


def _job_active(state: ParkState, job_id: str) -> bool:
    job = state.jobs.get(job_id)
    return job is not None and job.active


def pilot_events(
    state: ParkState,
    *,
    pilot_id: str,
    request: PilotRequest,
    batch_id: str,
    now: float,
    job_id: str | None = None,
    user: str | None = None,
    pool: bool = False,
    reason: str = "",
) -> list[Event]:
    """A pilot handed to the batch system, as events (it may already have failed there:
    an empty `batch_id`, and `reason` the batch system's answer)."""
    if pilot_id in state.pilots:
        raise Conflict(f"pilot {pilot_id!r} is already recorded")
    if job_id is not None and job_id not in state.jobs:
        raise NotFound(f"job: no job {job_id!r}", field="job")
    events: list[Event] = [
        PilotSubmitted(
            at=now,
            pilot_id=pilot_id,
            scheduler=request.scheduler,
            batch_id=batch_id,
            request=request.model_dump(mode="json"),
            job_id=job_id,
            user=user,
            pool=pool,
            reason=reason if batch_id else "",
        )
    ]
    if not batch_id:
        events.append(PilotStateChanged(at=now, pilot_id=pilot_id, state="failed", reason=reason))
    return events


def pilot_state_events(
    state: ParkState,
    pilot_id: str,
    new_state: str,
    reason: str,
    now: float,
    queue: str | None = None,
) -> list[Event]:
    """The batch system's word on a pilot, when it says something new."""
    pilot = state.pilots.get(pilot_id)
    if pilot is None:
        raise NotFound(f"pilot_id: no pilot {pilot_id!r}", field="pilot_id")
    if new_state not in PILOT_STATES:
        raise InvalidRequest(f"state: one of {', '.join(sorted(PILOT_STATES))}", field="state")
    if not pilot.live or (pilot.state, pilot.reason) == (new_state, reason):
        return []
    if new_state == "queued" and pilot.state == "running":
        return []  # a worker joined before the batch system said so
    return [
        PilotStateChanged(at=now, pilot_id=pilot_id, state=new_state, reason=reason, queue=queue)
    ]


# -- the adaptive pool --------------------------------------------------------------------


class PoolConfig(BaseModel):
    """`park serve --pilots slurm:max-nodes=8,idle=300,target=300,...`: submit pool pilots
    while queued core-seconds exceed what the pool finishes within `target` seconds, never
    more than `max_nodes` nodes live nor `max_pending` pilots queued; release a pilot whose
    workers have had nothing to do for `idle` seconds. A job without a unit time yet
    counts `unit_seconds` per unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheduler: Scheduler = "slurm"
    max_nodes: int = Field(default=8, ge=1)
    max_pending: int = Field(default=2, ge=1)
    idle: float = Field(default=300.0, gt=0)
    target: float = Field(default=300.0, gt=0)
    nodes: int = Field(default=1, ge=1)
    cpus_per_node: int = Field(default=1, ge=1)
    walltime: Walltime = 3600
    queue: str | None = None
    account: str | None = None
    unit_seconds: float = Field(default=60.0, gt=0)

    @classmethod
    def from_text(cls, text: str) -> PoolConfig:
        scheduler, options = parse_options(text)
        return cls.model_validate({"scheduler": scheduler, **options})

    def pilot_request(self) -> PilotRequest:
        return PilotRequest(
            scheduler=self.scheduler,
            nodes=self.nodes,
            cpus_per_node=self.cpus_per_node,
            walltime=self.walltime,
            queue=self.queue,
            account=self.account,
        )


@dataclass(frozen=True, slots=True)
class PoolDecision:
    action: str  # "grow" or "release"
    reason: str
    pilot_id: str = ""  # the pilot released


def queued_core_seconds(state: ParkState, config: PoolConfig) -> float:
    """Work that pool pilots could take: queued units of jobs without a pilot of their own,
    each at its job's mean unit time so far."""
    total = 0.0
    for job_id in state.runnable:
        job = state.jobs[job_id]
        if job.resources and "pilot" in job.resources:
            continue
        total += len(job.queue) * (job.unit_seconds or config.unit_seconds)
    return total


def decide_pool(state: ParkState, config: PoolConfig, now: float) -> list[PoolDecision]:
    """At most one growth per call (the caller records it and asks again), and every
    release that is due."""
    decisions: list[PoolDecision] = []
    pool = [p for p in state.pilots.values() if p.pool and p.live]
    queued = queued_core_seconds(state, config)
    # Capacity: the cpus of the pool's live pilots (queued, starting or serving), and of
    # the other workers that take anyone's work.
    serving = sum(
        w.cpus
        for w in state.workers.values()
        if w.active
        and w.policy in (WorkerPolicy.ANY, WorkerPolicy.OWN_FIRST)
        and not (w.pilot_id in state.pilots and state.pilots[w.pilot_id].pool)
    )
    pending = [p for p in pool if p.state == "queued"]
    cpus = serving + sum(p.cpus for p in pool)
    capacity = cpus * config.target
    nodes = sum(p.nodes for p in pool)
    if queued > capacity:
        wanted = (
            f"{queued:.0f} queued core-s exceed what {cpus} cpu(s) finish in {config.target:g} s"
        )
        if nodes + config.nodes > config.max_nodes:
            pass  # at the maximum: nothing to record until something changes
        elif len(pending) >= config.max_pending:
            pass
        else:
            decisions.append(PoolDecision("grow", wanted))
    for pilot in sorted(pool, key=lambda p: p.id):
        if pilot.state != "running" or queued > 0:
            continue
        workers = [state.workers[w] for w in pilot.workers if w in state.workers]
        if any(w.units for w in workers if w.active):
            continue
        last = max([pilot.started_at or pilot.submitted_at, *(w.last_seen for w in workers)])
        if now - last >= config.idle:
            decisions.append(
                PoolDecision(
                    "release",
                    f"idle for {now - last:.0f} s (limit {config.idle:g} s), no queued work",
                    pilot.id,
                )
            )
    return decisions


__all__ = [
    "PilotRequest",
    "PilotSpecError",
    "PoolConfig",
    "PoolDecision",
    "decide_pool",
    "format_walltime",
    "parse_walltime",
    "pilot_events",
    "pilot_request",
    "pilot_request_from_text",
    "pilot_state_events",
    "private_pilots_done",
    "private_pilots_due",
    "queued_core_seconds",
]
