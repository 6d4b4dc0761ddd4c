"""The `EventLog` port: the one ordered, durable sequence of events park is built on.

Offsets are positions starting at 1; `after=0` reads from the beginning. An adapter must
make an appended batch durable and visible atomically, and keep the order of appends.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from park.events.schema import Event


class LogUnavailable(Exception):
    """The log cannot take a write now (disk full, database locked, read-only file system,
    broker unreachable). Nothing of the batch was written; the same append may succeed
    later, so the API answers 503 with Retry-After."""


class EventTooLarge(Exception):
    """An event larger than the log stores; refused before anything of its batch is
    written (the API answers 413)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    offset: int
    event: Event


class EventLog(abc.ABC):
    @abc.abstractmethod
    async def append(self, events: Sequence[Event]) -> list[int]:
        """Append a batch atomically; return the offsets assigned, in order."""

    @abc.abstractmethod
    async def read(self, after: int = 0, limit: int = 10_000) -> list[Recorded]:
        """Events with offset > `after`, oldest first, at most `limit`."""

    @abc.abstractmethod
    async def last_offset(self) -> int:
        """The offset of the newest event, 0 for an empty log."""

    @abc.abstractmethod
    async def wait(self, after: int, timeout: float) -> bool:
        """Block until an event with offset > `after` exists or `timeout` passes; say which."""

    @abc.abstractmethod
    async def close(self) -> None: ...
