"""An in-process park: the service core (park.core: step, fold, settle) and the real worker
runner, no server, no HTTP.

Events go through JSON as they would through the log, unit results as they would through
HTTP, so a test can fold the log again and compare with the live projections.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
from collections.abc import Sequence
from typing import Any

from park import core
from park.domain import UnitReport, WorkerPolicy
from park.events.schema import Event, event_from_json, event_to_json
from park.kinds import KINDS
from park.projections.state import JobView, ParkState
from park.worker.runner import AllowList, run_unit


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

    def run(self, command: core.Command) -> core.Step:
        """The service's loop (park.core.execute): decide, record, fold, settle."""
        return core.execute(self.state, command, self.now, self._append, self._folded)

    def _append(self, events: Sequence[Event]) -> list[int]:
        self.log.extend(event_to_json(e) for e in events)
        return list(range(len(self.log) - len(events) + 1, len(self.log) + 1))

    def _folded(self, changes: core.Changes) -> None:
        if self.keep_states and changes.offset is not None:
            self.states[changes.offset] = pickle.dumps(self.state)

    def submit(self, spec: dict[str, Any], kind: str = "fit") -> str:
        self._jobs += 1
        job_id = f"job{self._jobs}"
        self.run(core.SubmitJob(job_id=job_id, user="tester", kind=kind, spec=spec))
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
            core.RegisterWorker(
                worker_id=worker_id, details={"name": "sim", "cpus": 1, "policy": WorkerPolicy.ANY}
            )
        )
        order = random.Random(shuffle) if shuffle is not None else None
        done = 0
        allow = allow or AllowList()
        for _ in range(max_rounds):
            job = self.state.jobs[job_id]
            if not job.active or (stop_after is not None and done >= stop_after):
                return job
            self.now += 1.0
            lease = core.LeaseUnits(worker_id=worker_id, max_units=batch, lease_seconds=60.0)
            units = [lu.unit.id for lu in core.leased_units(self.state, self.run(lease).events)]
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
            self.run(core.ReportUnits(worker_id=worker_id, reports=reports))
        raise AssertionError("job did not finish")

    def replay(self, upto: int | None = None) -> ParkState:
        """A fresh fold of the first `upto` logged events (all by default), from JSON."""
        state = ParkState()
        for offset, body in enumerate(self.log[:upto], start=1):
            state.apply(offset, event_from_json(body))
        return state
