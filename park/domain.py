"""Domain vocabulary shared by every layer: statuses, priorities, worker policies, and the
report a worker sends for each unit it ran."""

from __future__ import annotations

from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Annotated, Any

from pydantic import ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass


class Priority(StrEnum):
    FREE = "free"
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {p: i for i, p in enumerate(Priority)}

# Credits charged per core-second of work, by priority. `free` costs nothing: that is what
# makes it the default and what lets users trade speed for volume.
DEFAULT_PRICES: dict[Priority, float] = {
    Priority.FREE: 0.0,
    Priority.LOW: 0.5,
    Priority.NORMAL: 1.0,
    Priority.HIGH: 2.0,
    Priority.URGENT: 4.0,
}


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATUSES


# A set, not a tuple of members: looking a member up on the class is slow (Python 3.11),
# and whether a job is still active is asked of every job the fold and the scheduler touch.
FINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED})


class UnitStatus(StrEnum):
    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"


class WorkerPolicy(StrEnum):
    ANY = "any"
    OWN_FIRST = "own-first"
    OWN_ONLY = "own-only"
    JOB = "job"


# A worker runs only functions on its allow list; these are always on it. The policy
# grants a unit only to workers whose announced list allows every function it calls.
ALWAYS_ALLOWED = ("park.builtins:sleep", "park.builtins:burn")


def function_allowed(patterns: tuple[str, ...] | list[str], function: str) -> bool:
    """`module:function` against allow-list patterns (`*` allowed, as fnmatch)."""
    if function in ALWAYS_ALLOWED:
        return True
    return any(fnmatchcase(function, pattern) for pattern in patterns)


# A job's units: how often one may fail (or run out of time) before the job fails, and
# the longest a unit may run when neither the job nor its kind says.
DEFAULT_MAX_ATTEMPTS = 3
MAX_ATTEMPTS_LIMIT = 100


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid", allow_inf_nan=False))
class UnitReport:
    """What a worker reports for one unit it ran: the one shape from the worker's runner,
    over HTTP (the API validates it as it is), to the command that records it."""

    unit_id: str
    ok: Annotated[bool, Strict()] = True
    result: Any = None
    error: Annotated[str | None, Field(max_length=100_000)] = None
    cpu_seconds: Annotated[float, Strict(), Field(ge=0.0, le=1e9)] = 0.0
    wall_seconds: Annotated[float, Strict(), Field(ge=0.0, le=1e9)] = 0.0
