"""The server's pilot manager: submits private pilots for jobs that asked for one, cancels
them when their job ends, follows every live pilot's state in the batch system, and runs
the adaptive pool (`park serve --pilots slurm:max-nodes=8,idle=300`).

What to do is decided by pure functions (park/scheduler/pilots.py) on the service's
state; this loop only carries the decisions out (sbatch/qsub, scancel/qdel, squeue/qstat,
in threads) and records what happened as events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from park.batch.systems import SYSTEMS, BatchError, BatchState, WorkerCommand, submit_pilot
from park.events.schema import Event, PoolDecided
from park.projections.state import ParkState
from park.scheduler.pilots import (
    PilotRequest,
    PoolConfig,
    decide_pool,
    job_pilot_request,
    pilot_events,
    pilot_state_events,
    private_pilots_done,
    private_pilots_due,
)
from park.service.engine import ParkService, new_id

log = logging.getLogger("park.batch")


@dataclass(frozen=True, slots=True)
class PilotSettings:
    server: str  # the URL pilots' workers reach this server at
    directory: Path  # where pilot scripts and their output go
    token: str | None = None  # a worker token for pilots' workers (passed in the environment)
    pool: PoolConfig | None = None
    interval: float = 1.0


def _batch_said(
    said: dict[str, BatchState], pilot_ids: Sequence[str]
) -> Callable[[ParkState, float], list[Event]]:
    """Record what the batch system said of these pilots, where it is news."""

    def record(state: ParkState, now: float) -> list[Event]:
        events: list[Event] = []
        for pilot_id in pilot_ids:
            pilot = state.pilots.get(pilot_id)
            answer = said.get(pilot.batch_id) if pilot is not None else None
            if pilot is not None and answer is not None and pilot.live:
                events += pilot_state_events(
                    state, pilot_id, answer.state, answer.reason, now, answer.queue
                )
        return events

    return record


class PilotManager:
    def __init__(self, service: ParkService, settings: PilotSettings) -> None:
        self.service = service
        self.settings = settings

    async def run(self) -> None:
        """Decide on every change (a job asking for a pilot is served at once), at most
        ten times a second; ask the batch system about pilots once per `interval`."""
        loop = asyncio.get_running_loop()
        polled = 0.0
        while True:
            poll = loop.time() - polled >= self.settings.interval
            try:
                await self.step(poll=poll)
            except Exception:  # the next round retries; the service must not stop
                log.exception("pilot manager round failed")
            if poll:
                polled = loop.time()
            await asyncio.sleep(0.1)
            await self.service.wait_for_change(self.settings.interval)

    async def step(self, *, poll: bool = True) -> None:
        state = self.service.state
        for job in private_pilots_due(state):
            request = job_pilot_request(job)
            if request is not None:
                reason = f"job {job.id} asked for a pilot of its own"
                await self._submit(request, job_id=job.id, user=job.user, reason=reason)
        for pilot_id in private_pilots_done(self.service.state):
            pilot = self.service.state.pilots[pilot_id]
            owner = self.service.state.jobs.get(pilot.job_id or "")
            status = owner.status.value if owner is not None else "gone"
            await self._cancel(pilot_id, f"its job {pilot.job_id} is {status}")
        if self.settings.pool is not None:
            await self._adapt(self.settings.pool)
        if poll:
            await self._poll()

    async def _submit(
        self,
        request: PilotRequest,
        *,
        job_id: str | None = None,
        user: str | None = None,
        pool: bool = False,
        reason: str,
        pilot_id: str | None = None,
    ) -> str:
        pilot_id = pilot_id or new_id()
        worker = WorkerCommand(self.settings.server, pilot_id, request.cpus_per_node, job_id)
        env = {"PARK_TOKEN": self.settings.token} if self.settings.token else None
        try:
            batch_id = await asyncio.to_thread(
                submit_pilot, pilot_id, request, worker, self.settings.directory, env
            )
        except BatchError as err:
            batch_id, reason = "", str(err)
            log.warning("pilot %s not submitted: %s", pilot_id, err)

        def record(state: ParkState, now: float) -> list[Event]:
            return pilot_events(
                state,
                pilot_id=pilot_id,
                request=request,
                batch_id=batch_id,
                now=now,
                job_id=job_id,
                user=user,
                pool=pool,
                reason=reason,
            )

        await self.service.execute(record)
        return pilot_id

    async def _cancel(self, pilot_id: str, reason: str) -> None:
        pilot = self.service.state.pilots[pilot_id]
        if pilot.batch_id:
            try:
                await asyncio.to_thread(SYSTEMS[pilot.scheduler].cancel, pilot.batch_id)
            except BatchError as err:
                log.warning("cancelling pilot %s: %s", pilot_id, err)
        await self.service.execute(
            lambda state, now: pilot_state_events(state, pilot_id, "cancelled", reason, now)
        )

    async def _poll(self) -> None:
        live = [p for p in self.service.state.pilots.values() if p.live and p.batch_id]
        for name, system in SYSTEMS.items():
            mine = [p for p in live if p.scheduler == name]
            if not mine:
                continue
            try:
                said = await asyncio.to_thread(system.states, [p.batch_id for p in mine])
            except BatchError as err:
                log.warning("asking %s about pilots: %s", name, err)
                continue

            await self.service.execute(_batch_said(said, [p.id for p in mine]))

    async def _adapt(self, config: PoolConfig) -> None:
        """Act on the pool's decisions, each recorded with the state it was made on; one
        growth per round, so the next round sees the pilot just submitted."""
        decided: list[PoolDecided] = []

        def decide(state: ParkState, now: float) -> list[Event]:
            decided.clear()
            for d in decide_pool(state, config, now):
                pilot_id = d.pilot_id or new_id()
                decided.append(
                    PoolDecided(
                        at=now,
                        action=d.action,
                        pilot_id=pilot_id,
                        reason=d.reason,
                        basis=state.offset,
                        config=config.model_dump(mode="json"),
                    )
                )
            return list(decided)

        await self.service.execute(decide)
        for d in decided:
            if d.action == "grow":
                await self._submit(
                    config.pilot_request(),
                    pool=True,
                    reason=f"the adaptive pool: {d.reason}",
                    pilot_id=d.pilot_id,
                )
            elif d.action == "release":
                await self._cancel(d.pilot_id, f"the adaptive pool: {d.reason}")
