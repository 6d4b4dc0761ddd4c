"""Waiting for an asyncio event with a time limit, and stopping a task, so that a stop is
never lost.

On Python 3.11, `asyncio.wait_for(event.wait(), t)` returns normally, dropping the
cancellation, when its task is cancelled in the same loop step as the event is set
(CPython gh-86296, fixed in 3.12). A loop waiting that way (the notifier, the pilot
manager: both wait for the next change of the state) then runs on after its stop: `park
serve` hung on Ctrl-C whenever the stop came just after a change, as a local worker
registered. `asyncio.timeout` has no such window.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("park")

RECANCEL_SECONDS = 0.5


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` seconds; a cancellation always propagates."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(task: asyncio.Task[object], what: str) -> None:
    """Cancel `task` and wait for it to end, cancelling it again while it runs on: code
    it awaits (a library's own `wait_for`) may drop a cancellation, as above."""
    task.cancel()
    while not (await asyncio.wait([task], timeout=RECANCEL_SECONDS))[0]:
        log.debug("%s runs on after it was cancelled; cancelling it again", what)
        task.cancel()
