"""Retention for the embedded log: what `park compact` may move out of the live file.

Only events that start-up never needs again: older than the newest snapshot, whose
finished jobs the archive already holds (its position is past them). They stay readable
from segment files (park.events.segments), so audits and `park replay --verify` still see
every event; they just no longer weigh on the live SQLite file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from park.api.history import parse_time
from park.events.segments import Compaction, SegmentStore, compact
from park.service.archive_store import ArchiveStore


def newest_snapshot_offset(data_dir: Path) -> int:
    offsets = [
        int(p.name.split("-")[1].split(".")[0])
        for p in (data_dir / "snapshots").glob("state-*.pickle")
    ]
    return max(offsets, default=0)


def offset_before(log_path: Path, before: str) -> int:
    """The last offset to move for `--before`: an offset (moved: those below it) or a date
    (moved: events recorded before it)."""
    if before.isdigit():
        return int(before) - 1
    at = parse_time(before, "--before")
    db = sqlite3.connect(log_path)
    try:
        row = db.execute("SELECT MAX(offset) FROM events WHERE at < ?", (at,)).fetchone()
    finally:
        db.close()
    return int(row[0] or 0)


def compact_data_dir(data_dir: Path, before: str) -> tuple[Compaction, int, int]:
    """Compact up to `--before`, the newest snapshot and the archive's position, whichever
    is first; also return those two positions."""
    log_path = data_dir / "events.sqlite3"
    snapshot = newest_snapshot_offset(data_dir)
    archive = ArchiveStore.in_data_dir(data_dir)
    try:
        archived = archive.offset
    finally:
        archive.close()
    up_to = min(offset_before(log_path, before), snapshot, archived)
    return compact(log_path, SegmentStore(data_dir / "segments"), up_to), snapshot, archived
