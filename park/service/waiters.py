"""Lease long-polls waiting for work, woken one at a time rather than all at once.

A thousand idle workers each hold a lease long-poll. Waking all of them whenever work
appears (one event for every waiter) costs a thousand lock round trips and scheduler
calls for one unit of work, and the one worker that gets it waits behind the others.
Instead a wake-up is a relay: work appearing wakes the longest waiting poll; a poll woken
this way tries to lease and then, if work is still queued, wakes the next one that was
already waiting when the relay began. So only as many polls wake as there is work for
(plus those that find nothing they may run), each once per relay, in the order they
began to wait: the order in which the one event used to wake them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class LeaseWaiters:
    def __init__(self) -> None:
        self._waiting: OrderedDict[int, asyncio.Future[int]] = OrderedDict()
        self._next_ticket = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._waiting)

    def work_added(self) -> None:
        """Work appeared: start a relay among the polls waiting now."""
        self.wake_next(relay=self._next_ticket)

    def wake_next(self, relay: int) -> bool:
        """Wake the longest waiting poll that began to wait before `relay` began."""
        while self._waiting:
            ticket, waiter = next(iter(self._waiting.items()))
            if ticket >= relay:
                return False
            del self._waiting[ticket]
            if not waiter.done():
                waiter.set_result(relay)
                return True
        return False

    def wake_all(self) -> None:
        """The server is closing: every poll answers now."""
        self.closed = True
        waiting, self._waiting = self._waiting, OrderedDict()
        for waiter in waiting.values():
            if not waiter.done():
                waiter.set_result(self._next_ticket)

    async def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds for a wake-up; the relay it belongs to (to hand on
        with `wake_next` once this poll has tried to lease), or None on timeout."""
        if self.closed:
            return None
        ticket = self._next_ticket
        self._next_ticket += 1
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = waiter
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(waiter)
        except TimeoutError:
            woken = waiter.done() and not waiter.cancelled()
            return waiter.result() if woken else None  # woken just as the wait ran out
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # woken, then gone (hung up):
                self.wake_next(waiter.result())  # the relay must not stop here
            raise
        finally:
            self._waiting.pop(ticket, None)
            if not waiter.done():
                waiter.cancel()


__all__ = ["LeaseWaiters"]
