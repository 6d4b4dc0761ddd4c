"""The job change feed behind `GET /v1/jobs/stream`: a snapshot, then one change per job
per commit, each stamped with a log offset so a client can resume where it stopped.

Changes are coalesced per job within one folded batch (fifty grants to one job are one
`upsert`), and stamped with the offset of the job's last event in that batch; offsets are
therefore strictly increasing along the feed, and a client that has seen offset N has
seen every change up to N. The feed keeps the latest changes in memory; a client asking
to resume from before the oldest one gets a fresh snapshot instead.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from park.events.schema import Event, job_id_of
from park.projections.state import ParkState
from park.projections.views import job_json
from park.waiting import wait_event


@dataclass(frozen=True, slots=True)
class JobChange:
    offset: int
    op: str  # "upsert" | "remove"
    job: dict[str, Any]
    # Encoded once, sent to every subscriber.
    data: str = field(init=False)

    def __post_init__(self) -> None:
        body = {"offset": self.offset, "op": self.op, "job": self.job}
        object.__setattr__(self, "data", json.dumps(body))


class JobFeed:
    def __init__(self, keep: int = 100_000) -> None:
        self.changes: deque[JobChange] = deque(maxlen=keep)
        # Changes after this offset are all in memory (nothing before the feed began).
        self.resumable_after = 0
        self._appended = asyncio.Event()
        # What clients last saw of each active job: a grant that changes nothing visible
        # (the job already running) makes no change message.
        self._shown: dict[str, dict[str, Any]] = {}
        # Told every batch folded after start-up (the metrics count what happens live).
        self.observers: list[Callable[[Sequence[tuple[int, Event]]], None]] = []

    def start_at(self, offset: int, state: ParkState) -> None:
        """The projections were loaded up to `offset` without the feed watching."""
        self.resumable_after = offset
        self._shown = {j.id: job_json(j, private=False) for j in state.jobs.values() if j.active}

    def record(self, folded: Iterable[tuple[int, Event]], state: ParkState) -> None:
        if self.observers:
            folded = list(folded)
            for observe in self.observers:
                observe(folded)
        last: dict[str, int] = {}
        archived = {job.id: job for job in state.outbox.jobs}  # finished and moved out
        for offset, event in folded:
            job_id = job_id_of(event)
            if job_id is not None and (job_id in state.jobs or job_id in archived):
                last[job_id] = offset
        if not last:
            return
        recorded = False
        for job_id, offset in sorted(last.items(), key=lambda item: item[1]):
            job = state.jobs.get(job_id) or archived[job_id]
            view = job_json(job, private=False)
            if job.active:
                if self._shown.get(job_id) == view:
                    continue
                self._shown[job_id] = view
            elif self._shown.pop(job_id, None) is None:
                continue  # removed already
            change = JobChange(offset, "upsert" if job.active else "remove", view)
            if len(self.changes) == self.changes.maxlen:
                self.resumable_after = self.changes[0].offset
            self.changes.append(change)
            recorded = True
        if not recorded:
            return
        self._appended.set()
        self._appended = asyncio.Event()

    def since(self, after: int) -> list[JobChange] | None:
        """Changes with offset > `after`, or None if some of them are no longer kept."""
        if after < self.resumable_after:
            return None
        if not self.changes or self.changes[-1].offset <= after:
            return []
        # Changes are ordered by offset: walk back from the newest.
        found: list[JobChange] = []
        for change in reversed(self.changes):
            if change.offset <= after:
                break
            found.append(change)
        found.reverse()
        return found

    async def wait(self, timeout: float) -> None:
        """Until something is recorded, or `timeout` passes."""
        appended = self._appended
        await wait_event(appended, timeout)


def snapshot(state: ParkState) -> dict[str, Any]:
    return {
        "offset": state.offset,
        "jobs": [job_json(job, private=False) for job in state.jobs.values() if job.active],
    }
