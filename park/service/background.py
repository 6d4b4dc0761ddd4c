"""A long-running part of a server process (the notifier, the pilot manager): started with
the app, cancelled at its shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Generic, Protocol, TypeVar

from park.waiting import cancel_and_wait


class Runs(Protocol):
    async def run(self) -> None: ...


R = TypeVar("R", bound=Runs)


class BackgroundTask(Generic[R]):
    def __init__(self, name: str, runner: R) -> None:
        self.name = name
        self.runner = runner
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run(), name=self.name)

    async def stop(self) -> None:
        if self.task is not None:
            await cancel_and_wait(self.task, self.name)
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
