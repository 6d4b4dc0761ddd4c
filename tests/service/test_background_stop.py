"""A server's background tasks stop when told, even when told in the very step the state
changes: on Python 3.11 `asyncio.wait_for` dropped such a cancellation, and `park serve`
then hung on Ctrl-C in the notifier's stop (as its local worker registered)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import anyio
import pytest

from park.events.sqlite import SqliteEventLog
from park.notify.config import notifier_task
from park.notify.notifier import NotifySettings
from park.service.engine import ParkService
from park.waiting import cancel_and_wait, wait_event

pytestmark = pytest.mark.anyio


async def test_the_notifier_stops_when_told_as_a_worker_registers(tmp_path: Path) -> None:
    service = ParkService(SqliteEventLog(tmp_path / "events.sqlite3"))
    await service.start()
    settings = NotifySettings(webhook_secret=b"s3cret")
    try:
        for steps in range(4):  # the stop comes 0, 1, 2, 3 loop steps after the change
            notifier = notifier_task(service, settings, active=lambda: True, takeover=True)
            notifier.start()
            running = notifier.task
            await asyncio.sleep(0.05)  # it waits for the next change
            await service.register_worker(name=f"w{steps}", cpus=1)
            for _ in range(steps):
                await asyncio.sleep(0)
            stopping = asyncio.ensure_future(notifier.stop())
            done, _ = await asyncio.wait([stopping], timeout=5.0)
            assert running is not None and running.done(), f"still running {steps} steps after"
            assert done and notifier.task is None
    finally:
        for task in asyncio.all_tasks():  # one left running (by a failure above)
            if task.get_name() == "park-notifier":
                task.cancel()
        await service.stop()


async def test_waiting_for_an_event_is_cancelled_even_as_the_event_is_set() -> None:
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_event(event, 10.0))
    await asyncio.sleep(0)
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await wait_event(event, 0.0)
    assert not await wait_event(asyncio.Event(), 0.01)


async def test_a_task_that_drops_a_cancellation_is_cancelled_again() -> None:
    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # as a library's wait_for may
            await asyncio.sleep(30)
        await asyncio.sleep(30)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    with anyio.fail_after(5):
        await cancel_and_wait(task, "stubborn")
    assert task.cancelled()
