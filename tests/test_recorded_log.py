"""A log recorded by a real `park serve` with real workers (tests/data/logs, written by
record_main_log.py on 2026-11-27: map and fit jobs, cancels, a worker killed with leases
out, budget, priority and tag changes) still replays to what that server showed: every
recorded grant is what the policy decides on replay, and the folded jobs, ledger and
workers are the ones the server answered with at the end.

The fixture is a file recorded by older code: a change to the fold, the policy or the
event schema that breaks it breaks reading every existing log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from park.api.schemas import ledger_json
from park.events.sqlite import SqliteEventLog
from park.projections.views import job_json, worker_json
from park.replay import replay

LOGS = Path(__file__).parent / "data" / "logs"
RECORDED = LOGS / "main-2026-11-27.sqlite3"
EXPECTED = LOGS / "main-2026-11-27.expected.json"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory holding a copy of the recorded log (opening it writes WAL files)."""
    shutil.copy(RECORDED, tmp_path / "events.sqlite3")
    return tmp_path


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def shown(value: Any, recorded: Any) -> Any:
    """`value` cut to the fields `recorded` has (dicts nested in dicts and lists)."""
    if isinstance(value, dict) and isinstance(recorded, dict):
        return {k: shown(value[k], recorded[k]) for k in recorded if k in value}
    if isinstance(value, list) and isinstance(recorded, list) and len(value) == len(recorded):
        return [shown(v, r) for v, r in zip(value, recorded, strict=True)]
    return value


@pytest.mark.anyio
async def test_the_recorded_log_replays_to_what_the_server_showed(data_dir: Path) -> None:
    expected = json.loads(EXPECTED.read_text())
    log = SqliteEventLog.in_data_dir(data_dir)
    try:
        report = await replay(log, verify=True)
        records = await log.read(after=0)
    finally:
        await log.close()
    types = {rec.event.type for rec in records}
    # The history is what the fixture claims to hold.
    assert {
        "job.cancelled", "unit.lease_expired", "budget.set", "job.priority_changed",
        "job.tags_changed", "worker.left",
    } <= types  # fmt: skip
    assert {job["kind"] for job in expected["jobs"]} == {"map", "fit"}

    assert report.mismatches == []
    assert report.grants == len(expected["grants"]) > 50
    assert report.requests > 20
    state = report.state
    assert state.offset == expected["offset"]
    # (views may grow new fields; every field the server showed is shown alike)
    jobs = as_json([job_json(j) for j in reversed(state.jobs.values())])
    assert shown(jobs, expected["jobs"]) == expected["jobs"]
    ledger = as_json(ledger_json(state, now=records[-1].event.at))
    assert shown(ledger, expected["ledger"]) == expected["ledger"]
    workers = as_json([worker_json(w) for w in state.workers.values()])
    assert shown(workers, expected["workers"]) == expected["workers"]


def test_park_replay_verify_finds_no_difference(data_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "park", "replay", "--verify", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": 0 differ" in done.stdout
    offset = json.loads(EXPECTED.read_text())["offset"]
    assert f"replayed to offset {offset}: 8 jobs" in done.stdout
