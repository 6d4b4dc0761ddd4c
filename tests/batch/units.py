"""Unit functions for the pilot tests, run by pilots' workers (on the allow list there)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def step(arg: dict[str, object]) -> int:
    """Sleep while `dir/slow` exists (at most a minute), then record that unit `i` ran to
    completion, once per run: a unit run twice to completion leaves two lines."""
    where = Path(str(arg["dir"]))
    deadline = time.monotonic() + 60
    while (where / "slow").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(float(arg.get("seconds", 0.0)))  # type: ignore[arg-type]
    with (where / "done").open("a") as f:
        f.write(f"{arg['i']} {os.getpid()}\n")
    return int(arg["i"])  # type: ignore[call-overload]
