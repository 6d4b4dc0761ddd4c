"""Functions every worker may run, whatever its allow list: for tests, demos, benchmarks."""

from __future__ import annotations

import time


def sleep(seconds: float) -> float:
    """Wait without using the CPU; return the seconds waited."""
    time.sleep(float(seconds))
    return seconds


def burn(seconds: float) -> float:
    """Spin the CPU for `seconds` of process time; return the seconds asked for."""
    end = time.process_time() + float(seconds)
    while time.process_time() < end:
        pass
    return seconds
