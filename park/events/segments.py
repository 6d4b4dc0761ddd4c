"""Compacted history of the embedded log: old events in compressed segment files.

`park compact --before OFFSET|DATE` moves events the newest snapshot and the archive
already hold out of the live SQLite file into gzip'd JSON-lines files under
`park-data/segments/` (`events-FIRST-LAST.jsonl.gz`, one `OFFSET<TAB>EVENT` a line), so
the live file stays small. The log reads them back transparently: `park events`, the
audit route and `park replay --verify` see one dense log from offset 1.
"""

from __future__ import annotations

import gzip
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

SEGMENT_EVENTS = 100_000  # events per segment file (~10 MB compressed)


@dataclass(frozen=True, slots=True)
class Segment:
    first: int
    last: int
    path: Path


class SegmentStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._listed: tuple[float, list[Segment]] | None = None
        self._cached: tuple[Path, list[tuple[int, str]]] | None = None  # the last one read

    def segments(self) -> list[Segment]:
        """The segment files, oldest first (listed again when the directory changes)."""
        try:
            stamp = self.directory.stat().st_mtime
        except FileNotFoundError:
            return []
        if self._listed is None or self._listed[0] != stamp:
            found = []
            for path in self.directory.glob("events-*-*.jsonl.gz"):
                _, first, last = path.name.split(".")[0].split("-")
                found.append(Segment(int(first), int(last), path))
            self._listed = (stamp, sorted(found, key=lambda s: s.first))
        return self._listed[1]

    def read(self, after: int, limit: int) -> list[tuple[int, str]]:
        """(offset, event JSON) after `after`, from the one segment holding `after + 1`."""
        for segment in self.segments():
            if segment.first <= after + 1 <= segment.last:
                rows = self._rows(segment.path)
                start = after + 1 - segment.first
                return rows[start : start + limit]
        return []

    def _rows(self, path: Path) -> list[tuple[int, str]]:
        if self._cached is None or self._cached[0] != path:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                rows = []
                for line in f:
                    offset, _, body = line.rstrip("\n").partition("\t")
                    rows.append((int(offset), body))
            self._cached = (path, rows)
        return self._cached[1]

    def write(self, rows: list[tuple[int, str]]) -> Path:
        """One segment file of dense offsets, written whole before it is visible."""
        self.directory.mkdir(parents=True, exist_ok=True)
        first, last = rows[0][0], rows[-1][0]
        assert last - first + 1 == len(rows), "a segment holds dense offsets"
        path = self.directory / f"events-{first:015d}-{last:015d}.jsonl.gz"
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as f:
            for offset, body in rows:
                f.write(f"{offset}\t{body}\n")
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path


@dataclass(frozen=True, slots=True)
class Compaction:
    moved: int
    up_to: int
    segments: list[Path]
    live_bytes_before: int
    live_bytes_after: int
    vacuumed: bool


def compact(log_path: Path, segments: SegmentStore, up_to: int) -> Compaction:
    """Move live events with offset <= `up_to` into segment files, then delete them from
    the live file and give its space back (VACUUM, when no other process holds it busy).
    The newest event always stays live: it carries the log's position."""
    db = sqlite3.connect(log_path, isolation_level=None, timeout=30.0)
    try:
        size_before = log_path.stat().st_size
        first, last = db.execute("SELECT MIN(offset), MAX(offset) FROM events").fetchone()
        up_to = min(up_to, (last or 0) - 1)
        written: list[Path] = []
        moved = 0
        if first is not None and up_to >= first:
            start = first
            while start <= up_to:
                end = min(up_to, start + SEGMENT_EVENTS - 1)
                rows = db.execute(
                    "SELECT offset, body FROM events WHERE offset >= ? AND offset <= ? "
                    "ORDER BY offset",
                    (start, end),
                ).fetchall()
                written.append(segments.write(rows))
                moved += len(rows)
                start = end + 1
            db.execute("DELETE FROM events WHERE offset <= ?", (up_to,))
        vacuumed = True
        try:
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:
            vacuumed = False  # a server holds it: the freed pages are reused for new events
        return Compaction(moved, up_to, written, size_before, log_path.stat().st_size, vacuumed)
    finally:
        db.close()
