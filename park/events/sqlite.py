"""The embedded `EventLog`: one SQLite file in WAL mode, a batch per transaction.

WAL with `synchronous=NORMAL` keeps every committed batch through a process crash
(`kill -9`); `durable=True` selects `synchronous=FULL` for power-loss safety as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from park.events.log import EventLog, EventTooLarge, LogUnavailable, Recorded
from park.events.schema import Event, event_from_json, event_to_json, job_id_of
from park.events.segments import SegmentStore
from park.waiting import wait_event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    offset INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    at REAL NOT NULL,
    job_id TEXT,
    body TEXT NOT NULL
);
"""

# SQLite's own limit on a value is 1e9 bytes; the body limit of the API keeps far below.
MAX_EVENT_CHARS = 256 * 1024 * 1024

# Other processes (`park events`, a second reader) cannot be notified in-process; they
# poll at this interval while waiting.
_POLL_SECONDS = 0.1


class SqliteEventLog(EventLog):
    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a short busy timeout: a writer outside park holding the file gets a 503, not a stall
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=1.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self._appended = asyncio.Event()
        self.segments = SegmentStore(self.path.parent / "segments")  # `park compact`

    @classmethod
    def in_data_dir(cls, data_dir: str | Path, *, durable: bool = False) -> SqliteEventLog:
        return cls(Path(data_dir) / "events.sqlite3", durable=durable)

    async def append(self, events: Sequence[Event]) -> list[int]:
        if not events:
            return []
        rows = [(e.type, e.at, job_id_of(e), event_to_json(e)) for e in events]
        for row in rows:
            if len(row[3]) > MAX_EVENT_CHARS:
                raise EventTooLarge(
                    f"an event of {len(row[3]):,} characters (the log takes {MAX_EVENT_CHARS:,})"
                )
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            first = db.execute("SELECT COALESCE(MAX(offset), 0) FROM events").fetchone()[0] + 1
            db.executemany("INSERT INTO events(type, at, job_id, body) VALUES (?,?,?,?)", rows)
            db.execute("COMMIT")
        except BaseException as err:
            if db.in_transaction:  # SQLite rolls some failures (a full disk) back itself
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(err, sqlite3.OperationalError | sqlite3.DatabaseError):
                raise LogUnavailable(f"{self.path.name}: {err}") from err
            raise
        self._appended.set()
        self._appended = asyncio.Event()
        return list(range(first, first + len(rows)))

    async def read(self, after: int = 0, limit: int = 10_000) -> list[Recorded]:
        rows = self._db.execute(
            "SELECT offset, body FROM events WHERE offset > ? ORDER BY offset LIMIT ?",
            (after, limit),
        ).fetchall()
        if not rows or rows[0][0] > after + 1:  # compacted: the older ones are in segments
            rows = self.segments.read(after, limit) or rows
        return [Recorded(offset, event_from_json(body)) for offset, body in rows]

    async def last_offset(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(offset), 0) FROM events").fetchone()
        return int(row[0])

    async def wait(self, after: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if await self.last_offset() > after:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await wait_event(self._appended, min(remaining, _POLL_SECONDS))

    async def close(self) -> None:
        self._db.close()
