"""When a worker takes work: desktops that join the pool pause while their owner's
machine is busy (`--max-load`) and outside the hours they lend (`--hours 18:00-08:00`);
pilots stop taking work before their allocation ends (`until`).

The gate is consulted before every lease; while it is shut, the worker keeps its
registration and running units but asks for nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("park.worker")

_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class Hours:
    """A daily window in local time, in minutes after midnight; it may wrap midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Hours:
        match = _HOURS.match(text.strip())
        if match is None:
            raise ValueError(f"--hours: expected HH:MM-HH:MM, not {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
            raise ValueError(f"--hours: not a time of day in {text!r}")
        return cls(h1 * 60 + m1, h2 * 60 + m2)

    def contains(self, minute: int) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def seconds_until_open(self, seconds_of_day: float) -> float:
        minute = int(seconds_of_day // 60)
        if self.contains(minute):
            return 0.0
        return ((self.start * 60 - seconds_of_day) % 86_400) or 86_400.0


def runnable_processes() -> float:
    """Processes running or ready to run right now, machine-wide (/proc/loadavg's fourth
    field; elsewhere the one-minute load average)."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return os.getloadavg()[0]


class LoadMeter:
    """The machine's load from others: runnable processes averaged over a short window,
    less this worker's own busy children and the reading itself. Short, so a pause
    follows the owner sitting down within seconds (the load average lags by minutes)."""

    def __init__(
        self,
        own_busy: Callable[[], int],
        window: float = 2.0,
        every: float = 0.2,
        sample: Callable[[], float] = runnable_processes,
    ) -> None:
        self.own_busy = own_busy
        self.every = every
        self.sample = sample
        self.samples: deque[float] = deque(maxlen=max(1, round(window / every)))

    def read(self) -> None:
        self.samples.append(max(0.0, self.sample() - 1.0 - self.own_busy()))

    @property
    def other_load(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else 0.0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.read()
            await asyncio.sleep(self.every)


class WorkGate:
    def __init__(
        self,
        *,
        max_load: float | None = None,
        hours: Hours | None = None,
        meter: LoadMeter | None = None,
    ) -> None:
        self.max_load = max_load
        self.hours = hours
        self.meter = meter
        self._said: str | None = None

    @property
    def gated(self) -> bool:
        return self.max_load is not None or self.hours is not None

    def shut_because(self) -> str | None:
        """Why no work should be taken now, or None."""
        if self.hours is not None:
            now = time.localtime()
            seconds = now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
            wait = self.hours.seconds_until_open(seconds)
            if wait > 0:
                return f"outside its hours; opens in {wait / 60:.0f} min"
        if self.max_load is not None and self.meter is not None:
            load = self.meter.other_load
            if load > self.max_load:
                return f"the machine's other load {load:.1f} is above {self.max_load:g}"
        return None

    async def wait_open(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            reason = self.shut_because()
            if reason is None:
                if self._said is not None:
                    log.warning("taking work again")
                    self._said = None
                return
            if self._said is None:
                log.warning("paused: %s", reason)
            self._said = reason
            await asyncio.sleep(0.25)

    @property
    def paused(self) -> bool:
        return self._said is not None
