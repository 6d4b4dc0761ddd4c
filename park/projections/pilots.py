"""The pilot table, folded from `pilot.*` events and the joins of pilots' workers.

A pilot is a batch job (Slurm, PBS) that runs park workers on the nodes it was given. Its
state is what the batch system last said of it (polled by the server, or by whoever
submitted it), except that a worker joining from it shows it running at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from park.events.schema import PilotStateChanged, PilotSubmitted

LIVE_STATES = frozenset({"queued", "running"})
PILOT_STATES = frozenset({"queued", "running", "ended", "failed", "cancelled"})


@dataclass(slots=True)
class PilotView:
    id: str
    scheduler: str
    batch_id: str
    request: dict[str, Any]
    job_id: str | None
    user: str | None
    pool: bool
    submitted_at: float
    why: str = ""  # why it was submitted
    reason: str = ""  # the batch system's reason for its state
    state: str = "queued"
    queue: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    workers: set[str] = field(default_factory=set)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def nodes(self) -> int:
        return int(self.request.get("nodes", 1))

    @property
    def cpus(self) -> int:
        return self.nodes * int(self.request.get("cpus_per_node", 1))


def pilot_submitted(pilots: dict[str, PilotView], e: PilotSubmitted) -> None:
    if e.pilot_id in pilots:
        return
    pilots[e.pilot_id] = PilotView(
        id=e.pilot_id,
        scheduler=e.scheduler,
        batch_id=e.batch_id,
        request=dict(e.request),
        job_id=e.job_id,
        user=e.user,
        pool=e.pool,
        submitted_at=e.at,
        why=e.reason,
        queue=e.request.get("queue"),
    )


def pilot_state_changed(pilots: dict[str, PilotView], e: PilotStateChanged) -> None:
    """A final state is final: a late `running` from a slow poll cannot revive a pilot."""
    pilot = pilots.get(e.pilot_id)
    if pilot is None or not pilot.live or e.state not in PILOT_STATES:
        return
    pilot.state = e.state
    pilot.reason = e.reason
    if e.queue:
        pilot.queue = e.queue
    if e.state == "running" and pilot.started_at is None:
        pilot.started_at = e.at
    if e.state not in LIVE_STATES:
        pilot.ended_at = e.at


def worker_joined_pilot(
    pilots: dict[str, PilotView], pilot_id: str, worker_id: str, at: float
) -> None:
    pilot = pilots.get(pilot_id)
    if pilot is None:
        return
    pilot.workers.add(worker_id)
    if pilot.state == "queued":
        pilot.state = "running"
        pilot.reason = ""
        pilot.started_at = at


def pilot_json(pilot: PilotView) -> dict[str, Any]:
    return {
        "id": pilot.id,
        "scheduler": pilot.scheduler,
        "batch_id": pilot.batch_id,
        "state": pilot.state,
        "reason": pilot.reason,
        "why": pilot.why,
        "queue": pilot.queue,
        "request": pilot.request,
        "job": pilot.job_id,
        "user": pilot.user,
        "pool": pilot.pool,
        "submitted_at": pilot.submitted_at,
        "started_at": pilot.started_at,
        "ended_at": pilot.ended_at,
        "workers": sorted(pilot.workers),
    }


def pilot_reasons(pilots: dict[str, PilotView], job_id: str) -> list[str]:
    """What a job's own pilots say, for `explain` and the job page."""
    mine = sorted((p for p in pilots.values() if p.job_id == job_id), key=lambda p: p.submitted_at)
    if not mine:
        return pool_reasons(pilots)
    last = mine[-1]
    name = f"pilot {last.batch_id or last.id}"
    if last.state == "queued":
        text = f"waiting for {name} in queue {last.queue or 'default'} ({last.scheduler})"
        return [text + (f": {last.reason}" if last.reason else "")]
    if last.state == "running":
        return [f"its {name} is running with {len(last.workers)} worker(s)"]
    said = f": {last.reason}" if last.reason else ""
    if last.state == "failed" and last.started_at is None:
        return [f"its {name} could not start{said}; it gets no other pilot"]
    return [f"its {name} {last.state}{said}; another is submitted while units wait"]


def pool_reasons(pilots: dict[str, PilotView]) -> list[str]:
    """Pilots the adaptive pool has asked for and the batch queue still holds, and why."""
    waiting = sorted(
        (p for p in pilots.values() if p.pool and p.state == "queued"), key=lambda p: p.id
    )
    return [
        f"the adaptive pool's pilot {p.batch_id or p.id} waits in queue {p.queue or 'default'}"
        + (f" ({p.reason})" if p.reason else "")
        + (f"; {p.why}" if p.why else "")
        for p in waiting
    ]
