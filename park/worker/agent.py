"""The worker agent: registers, leases units, runs them in child processes, reports.

It keeps two lease loops ("slots") per child; a slot leases only while it holds a free
child, so one slot's lease overlaps the other's report but no unit waits behind another.
It asks for about `target_batch_seconds` of work per lease (the server sizes the batch by
each job's unit times), and heartbeats the leases of units still running. A server that
goes away (restart, crash) is retried with back-off; results finished meanwhile are
reported when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx

from park.settings import WorkerSettings
from park.worker.desktop import Hours, LoadMeter, WorkGate
from park.worker.runner import AllowList, run_batch

log = logging.getLogger("park.worker")


WorkerOptions = WorkerSettings


class ServerGone(Exception):
    pass


class WorkerRefused(Exception):
    """The server refused to register this worker (a bad policy, owner or token)."""


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
        self.lease_seconds = 30.0
        self.in_flight: set[str] = set()
        headers = {"Authorization": f"Bearer {options.token}"} if options.token else {}
        self._http = httpx.AsyncClient(
            base_url=options.server.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(options.poll_seconds + 30.0, connect=5.0),
        )
        self._children = asyncio.Semaphore(options.cpus)
        self._registering = asyncio.Lock()
        self._told_unreachable = False
        self._pool = ProcessPoolExecutor(
            max_workers=options.cpus,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_ignore_interrupts,
        )
        self.meter = LoadMeter(lambda: len(self.in_flight)) if options.max_load else None
        self.gate = WorkGate(
            max_load=options.max_load,
            hours=Hours.parse(options.hours) if options.hours else None,
            meter=self.meter,
        )

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call, retried while the server is unreachable (it may be restarting)."""
        delay = 0.1
        give_up = time.monotonic() + self.options.give_up_after
        while True:
            try:
                response = await self._http.request(method, path, json=body)
            except httpx.TransportError as err:
                if time.monotonic() > give_up:
                    raise ServerGone(
                        f"{self.options.server} unreachable for "
                        f"{self.options.give_up_after:.0f} s ({err}); giving up"
                    ) from err
                if not self._told_unreachable:
                    self._told_unreachable = True
                    log.warning(
                        "%s unreachable (%s); retrying for up to %.0f s (Ctrl-C to stop)",
                        self.options.server, err or type(err).__name__,
                        self.options.give_up_after,
                    )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if response.status_code >= 500 and time.monotonic() < give_up:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self._told_unreachable:
                self._told_unreachable = False
                log.warning("%s reachable again", self.options.server)
            response.raise_for_status()
            return response.json() if response.content else None

    async def register(self) -> str:
        o = self.options
        body = {
            "name": o.name or f"{socket.gethostname()}:{os.getpid()}",
            "cpus": o.cpus,
            "owner": o.owner,
            "policy": o.policy,
            "job": o.job,
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
        # Start the children (and their imports) while registering: a pilot's first unit
        # then runs as soon as it is granted.
        loop = asyncio.get_running_loop()
        for _ in range(self.options.cpus):
            loop.run_in_executor(self._pool, run_batch, [], ())
        registering = asyncio.create_task(self.register())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([registering, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not registering.done() or registering.exception() is not None:
            # stopped while the server was still unreachable, or refused
            registering.cancel()
            await asyncio.gather(registering, return_exceptions=True)
            await self._http.aclose()
            self._stop_children()
            if not registering.cancelled():
                registering.result()
            return
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
            # Children first: a unit that finished after the leases were given back would
            # have run to completion twice once it is granted again.
            self._stop_children()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._leave(), 5.0)
            await self._http.aclose()

    async def _leave_at(self, until: float, stop: asyncio.Event) -> None:
        """A pilot's worker leaves on its own before the allocation ends: its leases are
        given back at once, rather than lost to the batch system's kill."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, until - time.time()))
        if not stop.is_set():
            log.warning("leaving: the pilot's time is up")
            stop.set()

    def _stop_children(self) -> None:
        """Stopping means now: units still running are abandoned (their leases were given
        back by leaving), so the children are terminated rather than waited for."""
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()

    async def _leave(self) -> None:
        if self.worker_id is not None:
            await self._http.delete(f"/v1/workers/{self.worker_id}")

    async def _slot(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
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
            # Lease only while holding a free child: units never wait behind a long one
            # (where another worker could have run them), yet this slot's lease overlaps
            # the other slot's report.
            async with self._children:
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
                try:
                    reports = await loop.run_in_executor(
                        self._pool, run_batch, units, self.allow.patterns
                    )
                finally:
                    self.in_flight.difference_update(ids)
            await self._report(reports)

    async def _register_again(self, known_as: str | None) -> None:
        """Once per loss, however many slots notice it."""
        async with self._registering:
            if self.worker_id == known_as:
                await self.register()

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
        while not stop.is_set():
            await asyncio.sleep(max(0.2, self.lease_seconds / 3))
            if self.in_flight and self.worker_id is not None:
                with contextlib.suppress(httpx.HTTPError, ServerGone):
                    await self._call(
                        "POST",
                        f"/v1/workers/{self.worker_id}/heartbeat",
                        {"unit_ids": sorted(self.in_flight)},
                    )


def _server_message(response: httpx.Response) -> str:
    """The server's own words for a refusal: its error message, else the body."""
    try:
        error = response.json()["error"]
        return f"{error['message']} ({response.status_code})"
    except Exception:
        return f"{response.status_code}: {response.text[:300]}"


def _ignore_interrupts() -> None:
    """Ctrl-C reaches the whole process group; the agent stops its children itself, so
    they must not each print a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
