"""The archive: finished jobs that left memory, and closed days of usage, in SQLite.

A projection like any other, folded from the log: the fold decides what leaves memory
(park.projections.archive); this store writes it, together with the log offset it has
taken up to, in one transaction, so after a crash it resumes from its own position. It
lives beside the log (`park-data/archive.sqlite3`; with Kafka, one per server and topic,
rebuilt from the topic when missing). Listings by user, tag, status or kind are answered
from indexes, newest first by the job's `seq`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic_core import from_json, to_json

from park.domain import JobStatus, Priority
from park.events.schema import NotifyRequest
from park.projections.archive import DayUsage, JobQuery
from park.projections.state import JobView

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    view BLOB NOT NULL,
    spec BLOB NOT NULL,
    result BLOB
);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs(user, seq);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs(submitted_at);
CREATE TABLE IF NOT EXISTS job_tags (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, value, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_tags_by_key ON job_tags(key, seq);
CREATE TABLE IF NOT EXISTS usage_days (
    day INTEGER NOT NULL,
    user TEXT NOT NULL,
    charged REAL NOT NULL,
    core_seconds REAL NOT NULL,
    units INTEGER NOT NULL,
    PRIMARY KEY (day, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS position (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    offset INTEGER NOT NULL
);
"""

# The JobView fields kept in `view` (spec and result have columns of their own).
_VIEW_FIELDS = (
    "id", "user", "kind", "priority", "tags", "notify", "submitted_at", "resources", "status",
    "started_at", "finished_at", "units_total", "units_done", "error", "seq", "attempts",
    "cpu_seconds", "workers", "timed_units", "timed_seconds", "charged",
)  # fmt: skip


def _row(job: JobView) -> tuple[Any, ...]:
    view = {name: getattr(job, name) for name in _VIEW_FIELDS}
    return (
        job.seq,
        job.id,
        job.user,
        job.kind,
        job.status.value,
        job.submitted_at,
        to_json(view),
        to_json(job.spec),
        to_json(job.result),
    )


def _job(view: bytes, spec: bytes, result: bytes | None) -> JobView:
    fields = from_json(view)
    fields["priority"] = Priority(fields["priority"])
    fields["status"] = JobStatus(fields["status"])
    if fields["notify"] is not None:
        fields["notify"] = NotifyRequest.model_validate(fields["notify"])
    job = JobView(spec=from_json(spec), **fields)
    if result is not None:
        job.result = from_json(result)
    return job


class ArchiveStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: str | Path, name: str = "archive") -> ArchiveStore:
        return cls(Path(data_dir) / f"{name}.sqlite3")

    @property
    def offset(self) -> int:
        """The log offset the archive holds everything up to."""
        row = self._db.execute("SELECT offset FROM position WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def write(self, jobs: Sequence[JobView], days: Sequence[DayUsage], offset: int) -> None:
        """Take what left memory up to `offset`, and that position, in one transaction.
        Writing a job or a day again (a replay from an older snapshot) changes nothing."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if jobs:
                db.executemany(
                    "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?)",
                    [_row(job) for job in jobs],
                )
                db.executemany(
                    "INSERT OR IGNORE INTO job_tags VALUES (?,?,?)",
                    [(k, v, job.seq) for job in jobs for k, v in job.tags.items()],
                )
            if days:
                db.executemany(
                    "INSERT OR REPLACE INTO usage_days VALUES (?,?,?,?,?)",
                    [(d.day, d.user, d.charged, d.core_seconds, d.units) for d in days],
                )
            db.execute(
                "INSERT INTO position VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET offset = "
                "MAX(offset, excluded.offset)",
                (offset,),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite rolls some failures (a read-only disk) back itself
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    def clear(self) -> None:
        """Forget everything (the log it was folded from is not this one)."""
        self._db.executescript(
            "BEGIN; DELETE FROM jobs; DELETE FROM job_tags; DELETE FROM usage_days; "
            "DELETE FROM position; COMMIT;"
        )

    def get(self, job_id: str) -> JobView | None:
        row = self._db.execute(
            "SELECT view, spec, result FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return None if row is None else _job(*row)

    def jobs(self, query: JobQuery, *, above: int | None = None) -> list[JobView]:
        """Archived jobs matching `query` (and with `seq` above `above`), newest first,
        without their results."""
        statuses = query.archived_statuses
        if statuses is None:
            return []
        where: list[str] = []
        args: list[Any] = []
        source = "jobs j"
        tags = list(query.tags)
        if tags:  # the first tag drives the search from its index
            key, value = tags.pop(0)
            source = "job_tags t JOIN jobs j ON j.seq = t.seq"
            where.append("t.key = ?")
            args.append(key)
            if value is not None:
                where.append("t.value = ?")
                args.append(value)
            order = "t.seq"
        else:
            order = "j.seq"
        if query.before is not None:
            where.append(f"{order} < ?")
            args.append(query.before)
        if above is not None:
            where.append(f"{order} > ?")
            args.append(above)
        for key, value in tags:
            exists = "EXISTS (SELECT 1 FROM job_tags x WHERE x.seq = j.seq AND x.key = ?"
            where.append(exists + (" AND x.value = ?)" if value is not None else ")"))
            args.extend([key] if value is None else [key, value])
        if query.user is not None:
            where.append("j.user = ?")
            args.append(query.user)
        for column, values in (("status", statuses), ("kind", query.kinds)):
            if values:
                where.append(f"j.{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if query.since is not None:
            where.append("j.submitted_at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("j.submitted_at < ?")
            args.append(query.until)
        sql = f"SELECT j.view, j.spec FROM {source}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order} DESC LIMIT ?"
        args.append(query.limit)
        return [_job(view, spec, None) for view, spec in self._db.execute(sql, args)]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    def days(self, first: int, last: int) -> list[DayUsage]:
        """Closed days of usage from day `first` to `last` (inclusive), by day and user."""
        rows = self._db.execute(
            "SELECT day, user, charged, core_seconds, units FROM usage_days "
            "WHERE day >= ? AND day <= ? ORDER BY day, user",
            (first, last),
        )
        return [DayUsage(*row) for row in rows]

    def close(self) -> None:
        self._db.close()
