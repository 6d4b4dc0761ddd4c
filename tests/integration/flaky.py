"""Functions for the isolation tests, run by real workers that allow `tests.integration.flaky:*`."""

from __future__ import annotations

from pathlib import Path


def fail_first(arg: list[str]) -> str:
    """Fails the first time it is called with this marker path, succeeds after."""
    marker, value = Path(arg[0]), arg[1]
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError(f"first attempt fails on purpose ({value})")
    return value
