"""Runs units inside a worker's child processes, behind the allow list.

A worker runs only functions that match its allow list (`PARK_ALLOWED_FUNCTIONS`,
comma-separated `module:function` patterns with `*`); park's built-ins are always allowed.
A refused unit fails with a message saying so, and its function is never imported.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass
from typing import Any

from park.domain import UnitReport, function_allowed
from park.kinds import KINDS

ALLOW_ENV = "PARK_ALLOWED_FUNCTIONS"
MAX_ERROR_CHARS = 100_000  # what a report's error may hold


@dataclass(frozen=True, slots=True)
class AllowList:
    patterns: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AllowList:
        raw = (environ if environ is not None else os.environ).get(ALLOW_ENV, "")
        return cls(tuple(p.strip() for p in raw.split(",") if p.strip()))

    def allows(self, function: str) -> bool:
        return function_allowed(self.patterns, function)


def run_unit(unit: dict[str, Any], allow: AllowList) -> UnitReport:
    """Run one leased unit; return its report (never raises)."""
    kind = KINDS.get(unit["kind"])
    if kind is None:
        return UnitReport(
            unit["id"], False, error=f"this worker does not know job kind {unit['kind']!r}"
        )
    payload = unit["payload"]
    refused = [f for f in kind.functions_of(payload) if not allow.allows(f)]
    if refused:
        return UnitReport(
            unit["id"],
            False,
            error=f"function {refused[0]!r} is not allowed on this worker "
            f"(add it to {ALLOW_ENV}); it was not run",
        )
    started, wall = time.process_time(), time.perf_counter()
    ok, result, error = False, None, None
    try:
        result = kind.run_unit(payload)
        json.dumps(result, allow_nan=False)  # what JSON cannot carry fails here, clearly
        ok = True
    except Exception as err:
        text = "".join(traceback.format_exception_only(err)).strip()
        result, error = None, text[:MAX_ERROR_CHARS]
    cpu = max(0.0, time.process_time() - started)
    return UnitReport(unit["id"], ok, result, error, cpu, max(0.0, time.perf_counter() - wall))


def run_batch(units: list[dict[str, Any]], patterns: tuple[str, ...]) -> list[UnitReport]:
    """Entry point in the child process: a whole batch per round trip keeps IPC cheap."""
    allow = AllowList(patterns)
    return [run_unit(unit, allow) for unit in units]
