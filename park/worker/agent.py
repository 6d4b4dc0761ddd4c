"""The worker agent: registers, leases units, runs them in child processes, reports.

It keeps two lease loops ("slots") per child; a slot leases only while it holds a free
child, so one slot's lease overlaps the other's report but no unit waits behind another.
The one exception is a batch of short units: when the batch a child runs is expected
(at the pace of its job's last batch here) to end within `LEASE_AHEAD_SECONDS`, the next batch is
leased while it runs, so the child does not idle through the server's answer and units
wait behind it no longer than that. It asks for about `target_batch_seconds` of work per
lease (the server sizes the batch by each job's unit times). It registers with its allow
list, so the server grants it only units it may run.

Every second it asks the server which of its running units to stop (their job was
cancelled, their lease revoked) and kills the children running them; every third of a
lease it also extends the leases. A unit past its time limit is killed too, and reported
failed. A server that goes away (restart, crash) is said so at once and retried with
back-off; results finished meanwhile are reported when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from park.domain import UnitReport
from park.protocol import HEARTBEATS_PER_LEASE, LEASE_SECONDS
from park.settings import WorkerSettings
from park.worker.child import Child, ChildLost
from park.worker.desktop import Hours, LoadMeter, WorkGate
from park.worker.runner import AllowList

log = logging.getLogger("park.worker")

# A batch expected to end within this long lets the next one be leased while it runs.
LEASE_AHEAD_SECONDS = 0.05
# A batch still running after this long reports the units it has finished so far.
REPORT_EVERY_SECONDS = 1.0


WorkerOptions = WorkerSettings


class ServerGone(Exception):
    pass


class WorkerRefused(Exception):
    """The server refused to register this worker (a bad policy, owner or token)."""


class LeaseTurn:
    """A slot's turn to lease, given back once: when its batch ends, or early."""

    def __init__(self, turns: asyncio.Semaphore) -> None:
        self._turns = turns
        self._held = False

    async def __aenter__(self) -> LeaseTurn:
        await self._turns.acquire()
        self._held = True
        return self

    async def __aexit__(self, *_: object) -> None:
        self.end()

    def end(self) -> None:
        if self._held:
            self._held = False
            self._turns.release()


class WorkerAgent:
    def __init__(
        self,
        options: WorkerOptions,
        allow: AllowList | None = None,
        *,
        on_registered: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self._on_registered = on_registered
        self.allow = allow if allow is not None else AllowList.from_env()
        self.worker_id: str | None = None
        self.lease_seconds = LEASE_SECONDS  # until registering tells
        self.in_flight: set[str] = set()  # leased, not yet run to the end
        self._running: dict[str, Child] = {}  # unit id -> the child running it now
        self._stopped: set[str] = set()  # units the server said to stop
        self._idle: list[Child] = []
        # A child started ahead (its imports done): a stopped unit's child is replaced at
        # once, so the next unit does not wait for a new process to import numpy and scipy.
        self._spare: asyncio.Task[Child] | None = None
        self._outage_since: float | None = None
        self._outage_told = 0.0
        headers = {"Authorization": f"Bearer {options.token}"} if options.token else {}
        self._http = httpx.AsyncClient(
            base_url=options.server.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(options.poll_seconds + 30.0, connect=5.0),
        )
        self._children = asyncio.Semaphore(options.cpus)  # a free child each
        self._lease_turns = asyncio.Semaphore(options.cpus)  # a lease per child, or ahead
        self._pace: dict[str, float] = {}  # job id -> seconds per unit of its last batch
        self._reporting: set[asyncio.Task[None]] = set()  # reports sent while batches run
        self.report_every = REPORT_EVERY_SECONDS
        self._registering = asyncio.Lock()
        self.meter = LoadMeter(lambda: len(self.in_flight)) if options.max_load else None
        self.gate = WorkGate(
            max_load=options.max_load,
            hours=Hours.parse(options.hours) if options.hours else None,
            meter=self.meter,
        )

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call, retried while the server is unreachable (it may be restarting)."""
        delay = 0.1
        limit = self.options.give_up_after
        give_up = None if limit is None else time.monotonic() + limit
        while True:
            try:
                response = await self._http.request(method, path, json=body)
            except httpx.TransportError as err:
                self._unreachable(err)
                if give_up is not None and time.monotonic() > give_up:
                    raise ServerGone(
                        f"{self.options.server} unreachable for {limit:.0f} s ({err}); giving up"
                    ) from err
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self._reachable()
            if response.status_code >= 500 and (give_up is None or time.monotonic() < give_up):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            response.raise_for_status()
            return response.json() if response.content else None

    def _unreachable(self, err: Exception) -> None:
        """Say at once that the server does not answer, and again every 30 s."""
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = self._outage_told = now
            log.warning(
                "server %s unreachable (%s); retrying %s (Ctrl-C to stop)",
                self.options.server,
                err or type(err).__name__,
                "until it answers"
                if self.options.give_up_after is None
                else f"for up to {self.options.give_up_after:.0f} s",
            )
        elif now - self._outage_told >= 30.0:
            self._outage_told = now
            log.warning(
                "server %s still unreachable after %.0f s; retrying",
                self.options.server,
                now - self._outage_since,
            )

    def _reachable(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "server %s answers again (after %.0f s)",
                self.options.server,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None

    async def register(self) -> str:
        o = self.options
        body = {
            "name": o.name or f"{socket.gethostname()}:{os.getpid()}",
            "cpus": o.cpus,
            "owner": o.owner,
            "policy": o.policy,
            "job": o.job,
            "allowed": list(self.allow.patterns),
        }
        if o.pilot is not None:
            body["pilot"] = o.pilot
        if o.until is not None:
            body["until"] = o.until
        try:
            answer = await self._call("POST", "/v1/workers", body)
        except httpx.HTTPStatusError as err:
            if err.response.status_code >= 500:
                raise
            raise WorkerRefused(_server_message(err.response)) from None
        self.worker_id = answer["id"]
        self.lease_seconds = float(answer["lease_seconds"])
        log.info("registered as worker %s", self.worker_id)
        if self._on_registered is not None:
            self._on_registered(str(self.worker_id))
            self._on_registered = None
        return str(self.worker_id)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        self._idle = list(
            await asyncio.gather(*(Child().start() for _ in range(self.options.cpus)))
        )
        self._spare = asyncio.create_task(Child().start())
        try:
            registering = asyncio.create_task(self.register())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([registering, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not registering.done():  # stopped while the server did not answer
                registering.cancel()
                await asyncio.gather(registering, return_exceptions=True)
                return
            registering.result()  # or WorkerRefused
            await self._serve(stop)
        finally:
            await self._stop_children()
            await self._http.aclose()

    async def _serve(self, stop: asyncio.Event) -> None:
        slots = [asyncio.create_task(self._slot(stop)) for _ in range(2 * self.options.cpus)]
        beat = asyncio.create_task(self._heartbeat(stop))
        if self.meter is not None:
            slots.append(asyncio.create_task(self.meter.run(stop)))
        if self.options.until is not None:
            slots.append(asyncio.create_task(self._leave_at(self.options.until, stop)))
        try:
            await asyncio.wait(
                [*slots, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            for task in slots:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stop.set()
            for task in [*slots, beat]:
                task.cancel()
            await asyncio.gather(*slots, beat, return_exceptions=True)
            await self._stop_children()  # first: the units stop, then their leases go back
            if self._reporting:  # finished units are not given back as if never run
                await asyncio.wait(self._reporting, timeout=5.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._leave(), 5.0)

    async def _leave_at(self, until: float, stop: asyncio.Event) -> None:
        """A pilot's worker leaves on its own before the allocation ends: its leases are
        given back at once, rather than lost to the batch system's kill."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, until - time.time()))
        if not stop.is_set():
            log.warning("leaving: the pilot's time is up")
            stop.set()

    async def _stop_children(self) -> None:
        """Stopping means now: units still running are abandoned (their leases are given
        back by leaving), so the children are killed rather than waited for."""
        children = [*self._idle, *self._running.values()]
        self._idle = []
        if self._spare is not None:
            spare, self._spare = self._spare, None
            spare.cancel()
            with contextlib.suppress(BaseException):
                children.append(await spare)
        await asyncio.gather(*(child.close() for child in children))

    async def _leave(self) -> None:
        if self.worker_id is not None:
            await self._http.delete(f"/v1/workers/{self.worker_id}")

    async def _slot(self, stop: asyncio.Event) -> None:
        lease = {
            "max_units": self.options.max_batch,
            "max_seconds": self.options.target_batch_seconds,
            "wait": self.options.poll_seconds,
        }
        if self.gate.gated:  # a paused desktop should not sit in a long poll
            lease["wait"] = min(self.options.poll_seconds, 1.0)
        while not stop.is_set():
            await self.gate.wait_open(stop)
            if stop.is_set():
                break
            # Lease only with a child free, or about to be (LEASE_AHEAD_SECONDS): units
            # never wait behind a long one (where another worker could have run them), yet
            # this slot's lease overlaps the other slot's report.
            async with LeaseTurn(self._lease_turns) as turn:
                known_as = self.worker_id
                try:
                    answer = await self._call("POST", f"/v1/workers/{known_as}/lease", lease)
                except httpx.HTTPStatusError as err:
                    if err.response.status_code in (404, 409):  # forgotten or marked gone
                        await self._register_again(known_as)
                        continue
                    raise
                units = answer["units"]
                if not units:
                    continue
                contexts = answer.get("contexts", {})
                for unit in units:
                    unit["payload"] = {**contexts.get(unit["job_id"], {}), **unit["payload"]}
                ids = [u["id"] for u in units]
                self.in_flight.update(ids)
                jobs = {u["job_id"] for u in units}
                job = jobs.pop() if len(jobs) == 1 else None
                async with self._children:
                    pace = self._pace.get(job) if job is not None else None
                    if pace is not None and pace * len(units) <= LEASE_AHEAD_SECONDS:
                        turn.end()
                    child = self._idle.pop()
                    begun = time.monotonic()
                    try:
                        reports, child = await self._run_units(child, units)
                    finally:
                        self._idle.append(child)
                        self.in_flight.difference_update(ids)
                        self._stopped.difference_update(ids)
                    if job is not None:
                        if len(self._pace) >= 1000:
                            self._pace.clear()
                        self._pace[job] = (time.monotonic() - begun) / len(units)
            if reports:
                await self._report(reports)

    async def _run_units(
        self, child: Child, units: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], Child]:
        """Run a batch in `child`, sent in one message, its reports read as they come,
        replacing the child whenever a unit must be stopped (out of time, or the server
        said so) or it dies; the rest of the batch then goes to the new child. Returns
        the reports not yet sent (none for units the server stopped: a batch running
        longer than `report_every` sends its finished units' reports as it goes, so
        the server sees which units still run) and the child now in use."""
        reports: list[dict[str, Any]] = []
        sent_at = time.monotonic()
        pending = deque(units)
        while pending:
            pending = deque(u for u in pending if u["id"] not in self._stopped)
            if not pending:
                break
            begun = time.monotonic()  # when the batch's first unit began, at the latest
            try:
                await child.send(list(pending), self.allow.patterns)
                async with asyncio.timeout(None) as limit:
                    while pending:
                        unit_id = pending[0]["id"]
                        self._running[unit_id] = child
                        if unit_id in self._stopped:  # begun since the server said so
                            child.kill()
                        seconds = pending[0].get("time_limit")
                        deadline = None
                        if seconds is not None:  # on the loop's clock, from when it began
                            left = begun + seconds - time.monotonic()
                            deadline = asyncio.get_running_loop().time() + left
                        limit.reschedule(deadline)
                        send_by = None  # the loop's time to send the reports held so far
                        if reports:
                            left = sent_at + self.report_every - time.monotonic()
                            send_by = asyncio.get_running_loop().time() + left
                        try:
                            async with asyncio.timeout_at(send_by) as sending:
                                finished = await child.reports()
                        except TimeoutError:
                            if not sending.expired():
                                raise  # the unit's time limit
                            self._report_soon(reports)
                            reports, sent_at = [], time.monotonic()
                            continue
                        for finished_at, report in finished:
                            begun = finished_at  # the next unit began then
                            unit_id = pending.popleft()["id"]
                            self._running.pop(unit_id, None)
                            if unit_id not in self._stopped:
                                reports.append(report)
            except (TimeoutError, ChildLost) as err:
                unit = pending[0]
                unit_id, seconds = unit["id"], unit.get("time_limit")
                self._running.pop(unit_id, None)
                code = child.proc.returncode if child.proc is not None else None
                killed = child.killed and not isinstance(err, TimeoutError)
                await child.close()
                child = await self._fresh_child()
                if unit_id in self._stopped:
                    log.warning("stopped unit %s: the server no longer leases it here", unit_id)
                    pending.popleft()
                    continue
                if killed:  # for another unit of the batch, reported just before: run again
                    continue
                pending.popleft()
                if isinstance(err, TimeoutError):
                    error = (
                        f"stopped after {seconds:g} s: the unit ran out of time (max_unit_seconds)"
                    )
                else:
                    error = f"the child process running it died (exit code {code})"
                wall = time.monotonic() - begun
                lost = UnitReport(unit_id, False, error=error, wall_seconds=wall)
                reports.append(dataclasses.asdict(lost))
        return reports, child

    async def _fresh_child(self) -> Child:
        """The spare child, and a new spare started behind it."""
        spare, self._spare = self._spare, asyncio.create_task(Child().start())
        return await spare if spare is not None else await Child().start()

    def _stop(self, unit_ids: list[str]) -> None:
        """Stop these units now: kill the children running them; skip those not begun."""
        for unit_id in unit_ids:
            if unit_id not in self.in_flight:
                continue
            self._stopped.add(unit_id)
            child = self._running.get(unit_id)
            if child is not None:
                child.kill()

    async def _register_again(self, known_as: str | None) -> None:
        """Once per loss, however many slots notice it."""
        async with self._registering:
            if self.worker_id == known_as:
                await self.register()

    def _report_soon(self, reports: list[dict[str, Any]]) -> None:
        """Report these while the batch runs on (their units no longer need heartbeats)."""
        self.in_flight.difference_update(r["unit_id"] for r in reports)
        task = asyncio.create_task(self._report(reports))
        self._reporting.add(task)
        task.add_done_callback(self._reported)

    def _reported(self, task: asyncio.Task[None]) -> None:
        self._reporting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("reporting finished units failed: %s", task.exception())

    async def _report(self, reports: list[dict[str, Any]]) -> None:
        """Report a batch. If the server refuses it (a result too large, say), each unit
        is reported failed with the server's reason rather than the work vanishing."""
        path = f"/v1/workers/{self.worker_id}/reports"
        try:
            await self._call("POST", path, {"reports": reports})
        except httpx.HTTPStatusError as err:
            if err.response.status_code >= 500 or err.response.status_code in (401, 403):
                raise
            reason = f"the server refused the report ({err.response.status_code}): "
            reason += err.response.text[:500]
            failed = [{"unit_id": r["unit_id"], "ok": False, "error": reason} for r in reports]
            with contextlib.suppress(httpx.HTTPStatusError):
                await self._call("POST", path, {"reports": failed})

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Every `check_seconds`, ask which running units to stop; every third of a lease,
        extend their leases too (only those write to the log)."""
        extended = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(
                max(0.1, min(self.options.check_seconds, self.lease_seconds / HEARTBEATS_PER_LEASE))
            )
            if not self.in_flight or self.worker_id is None:
                extended = time.monotonic()
                continue
            extend = time.monotonic() - extended >= self.lease_seconds / HEARTBEATS_PER_LEASE - 0.05
            running = sorted(self.in_flight)
            with contextlib.suppress(httpx.HTTPError, ServerGone):
                answer = await self._call(
                    "POST",
                    f"/v1/workers/{self.worker_id}/heartbeat",
                    {"unit_ids": running, "extend": extend},
                )
                if extend:
                    extended = time.monotonic()
                self._stop(list(answer.get("stop", [])))


def _server_message(response: httpx.Response) -> str:
    """The server's own words for a refusal: its error message, else the body."""
    try:
        error = response.json()["error"]
        return f"{error['message']} ({response.status_code})"
    except Exception:
        return f"{response.status_code}: {response.text[:300]}"
