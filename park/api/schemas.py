"""Request bodies and the JSON views of the read models (the HTTP contract)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from park.domain import Priority, UnitReport, WorkerPolicy
from park.events.bounds import check_json
from park.projections.state import ParkState
from park.protocol import MAX_BATCH_SECONDS, MAX_LEASE_WAIT

# Any JSON; NaN, infinity and what the log could not read back are refused for the whole
# body at once (RequestBody).
FiniteJson = Any
# JSON numbers and booleans as they are: lax pydantic would take `true` for 1 and "5" for 5.
Number = Annotated[float, Strict()]
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RequestBody(Body):
    """A whole request body: checked once, before its fields, against the bounds of what
    the log can store and read back (park.events.bounds), naming the offending field."""

    @model_validator(mode="before")
    @classmethod
    def _within_bounds(cls, data: Any) -> Any:
        check_json(data, "")
        return data


class SubmitJob(RequestBody):
    kind: str = Field(min_length=1, max_length=64)
    spec: dict[str, FiniteJson]
    priority: Priority = Priority.FREE
    tags: dict[str, str] = Field(default_factory=dict)
    name: str | None = Field(
        default=None, min_length=1, max_length=200, description="kept as the tag `name`"
    )
    resources: dict[str, FiniteJson] | None = Field(
        default=None, description='e.g. {"pilot": {"nodes": 2, "walltime": "1:00:00"}}'
    )
    notify: Any = Field(  # checked by park.commands.parse_notify, naming the field
        default=None,
        description='an e-mail address (a daily digest), or {"email", "when": '
        '"digest"|"each"|"never", "webhook"}',
    )
    max_attempts: Count | None = Field(
        default=None, ge=1, le=100, description="failures of one unit before the job fails (3)"
    )
    max_unit_seconds: Number | None = Field(
        default=None, gt=0, description="how long one unit may run (default: the kind's)"
    )


class CancelNotifications(Body):
    keys: list[str] = Field(default_factory=list, max_length=10_000)
    job_ids: list[str] = Field(default_factory=list, max_length=10_000)


class PatchJob(RequestBody):
    priority: Priority | None = None
    tags: dict[str, str | None] | None = Field(
        default=None, description="tags to set; a null value removes the tag"
    )


class RegisterWorker(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    cpus: Count = Field(default=1, ge=1, le=4096)
    owner: str | None = Field(default=None, max_length=200)
    policy: WorkerPolicy = WorkerPolicy.ANY
    job: str | None = None
    pilot: str | None = Field(default=None, max_length=64, description="the batch pilot it runs in")
    until: Number | None = Field(
        default=None, description="when it leaves (epoch seconds): no unit it cannot finish"
    )
    allowed: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None,
        max_length=1000,
        description="the worker's allow list (module:function patterns); it is granted "
        "only units whose functions match",
    )


class LeaseRequest(RequestBody):
    max_units: Count = Field(default=1, ge=1, le=10_000)
    max_seconds: Number | None = Field(default=None, gt=0.0, le=MAX_BATCH_SECONDS)
    wait: Number = Field(default=0.0, ge=0.0, le=MAX_LEASE_WAIT)


class Reports(RequestBody):
    reports: list[UnitReport] = Field(max_length=100_000)


class HeartbeatUnits(RequestBody):
    unit_ids: list[str] = Field(max_length=100_000)
    extend: Flag = Field(
        default=True, description="false: only ask which units to stop, extending nothing"
    )


class SetBudget(RequestBody):
    credits: Number | None = Field(ge=0)


def ledger_json(state: ParkState, now: float, user: str | None = None) -> dict[str, Any]:
    """Per user: totals, decayed `usage`, `budget_left`, and the same per priority."""
    users: dict[str, dict[str, Any]] = {}
    names = {who for who, _ in state.ledger} | set(state.budgets)
    for who in sorted(names):
        if user is not None and who != user:
            continue
        rows = {p.value: e for (u, p), e in state.ledger.items() if u == who}
        meter = state.usage.get(who)
        users[who] = {
            "charged": sum(e.charged for e in rows.values()),
            "reserved": sum(e.reserved for e in rows.values()),
            "refunded": sum(e.refunded for e in rows.values()),
            "core_seconds": sum(e.core_seconds for e in rows.values()),
            "slot_seconds": sum(e.slot_seconds for e in rows.values()),
            "units": sum(e.units for e in rows.values()),
            "usage": meter.at_time(now, state.policy.half_life) if meter else 0.0,
            "budget": state.budgets.get(who),
            "budget_left": state.budget_left(who),
            "priorities": {
                priority: {
                    "charged": e.charged,
                    "reserved": e.reserved,
                    "refunded": e.refunded,
                    "core_seconds": e.core_seconds,
                    "slot_seconds": e.slot_seconds,
                    "units": e.units,
                }
                for priority, e in sorted(rows.items())
            },
        }
    return {"users": users, "offset": state.offset}
