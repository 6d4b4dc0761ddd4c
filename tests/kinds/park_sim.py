"""An in-process park: the real commands, fold and worker runner, no server, no HTTP.

Events go through JSON as they would through the log, unit results as they would through
HTTP, so a test can fold the log again and compare with the live projections.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
from typing import Any

from park import commands
from park.commands import (
    UnitReport,
    jobs_touched,
    lease_units,
    register_worker,
    report_units,
    settle_jobs,
    submit_job,
)
from park.domain import Priority, WorkerPolicy
from park.events.schema import Event, event_from_json, event_to_json
from park.kinds import KINDS
from park.projections.state import JobView, ParkState
from park.worker.runner import AllowList, run_unit

# The pricing argument of `lease_units` is on its way out; pass it while it exists.
_LEASE_EXTRA: dict[str, Any] = (
    {"pricing": commands.Pricing()} if hasattr(commands, "Pricing") else {}
)


def fit(spec: dict[str, Any], **work: Any) -> dict[str, Any]:
    """Submit a fit, run it to the end in-process, return its result (or raise)."""
    park = InProcessPark()
    job = park.work(park.submit(spec), **work)
    if job.error is not None or job.result is None:
        raise AssertionError(f"fit failed: {job.status} {job.error}")
    result: dict[str, Any] = job.result
    return result


class InProcessPark:
    def __init__(self, *, keep_states: bool = False) -> None:
        self.state = ParkState()
        self.log: list[str] = []
        self.now = 1000.0
        self._jobs = 0
        self.keep_states = keep_states
        self.states: dict[int, bytes] = {}  # offset -> pickled live state, if kept

    def commit(self, events: list[Event]) -> None:
        for e in events:
            self.log.append(event_to_json(e))
            self.state.apply(len(self.log), e)
            if self.keep_states:
                self.states[len(self.log)] = pickle.dumps(self.state)

    def run(self, events: list[Event]) -> None:
        self.commit(events)
        touched = jobs_touched(events)
        while touched:
            more = settle_jobs(self.state, sorted(touched), self.now)
            self.commit(more)
            touched = jobs_touched(more)

    def submit(self, spec: dict[str, Any], kind: str = "fit") -> str:
        self._jobs += 1
        job_id = f"job{self._jobs}"
        self.run(
            submit_job(
                job_id=job_id, user="tester", kind=kind, spec=spec, priority=Priority.FREE,
                tags={}, notify=None, now=self.now,
            )
        )  # fmt: skip
        return job_id

    def work(
        self,
        job_id: str,
        *,
        batch: int = 4,
        shuffle: int | None = None,
        allow: AllowList | None = None,
        max_rounds: int = 100_000,
        stop_after: int | None = None,
    ) -> JobView:
        """Lease and run units until the job finishes (or `stop_after` units are done)."""
        worker_id = f"w{len(self.log)}"
        self.run(
            register_worker(
                self.state, worker_id=worker_id, name="sim", cpus=1, owner=None,
                policy=WorkerPolicy.ANY, job_id=None, now=self.now,
            )
        )  # fmt: skip
        order = random.Random(shuffle) if shuffle is not None else None
        done = 0
        allow = allow or AllowList()
        for _ in range(max_rounds):
            job = self.state.jobs[job_id]
            if not job.active or (stop_after is not None and done >= stop_after):
                return job
            self.now += 1.0
            grants = lease_units(
                self.state, worker_id, batch, now=self.now, lease_seconds=60.0, **_LEASE_EXTRA
            )
            self.run(grants)
            units = [e.unit_id for e in grants if hasattr(e, "unit_id")]
            if not units:
                raise AssertionError(f"job {job_id} is stuck: {job.status}, no units to run")
            if order is not None:
                order.shuffle(units)
            reports = []
            for unit_id in units:
                unit = self.state.units[unit_id]
                job_view = self.state.jobs[job_id]
                context = KINDS[job_view.kind].unit_context(job_view.spec)  # as the lease sends it
                report = run_unit(
                    {"id": unit_id, "kind": job_view.kind, "payload": {**context, **unit.payload}},
                    allow,
                )
                sent = json.loads(json.dumps(dataclasses.asdict(report)))  # as over HTTP
                sent.pop("wall_seconds")
                reports.append(UnitReport(**sent))
                done += 1
            events, _ = report_units(self.state, worker_id, reports, now=self.now)
            self.run(events)
        raise AssertionError("job did not finish")

    def replay(self, upto: int | None = None) -> ParkState:
        """A fresh fold of the first `upto` logged events (all by default), from JSON."""
        state = ParkState()
        for offset, body in enumerate(self.log[:upto], start=1):
            state.apply(offset, event_from_json(body))
        return state
