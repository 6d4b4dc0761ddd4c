"""Domain vocabulary shared by every layer: statuses, priorities, worker policies."""

from __future__ import annotations

from enum import StrEnum


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
        return self in (JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED)


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
