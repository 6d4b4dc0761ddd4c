from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from park.events.log import EventLog
from park.events.sqlite import SqliteEventLog
from tests.events.log_contract import EventLogContract, submitted

pytestmark = pytest.mark.anyio


class TestSqliteEventLog(EventLogContract):
    @pytest.fixture
    def make_log(self, tmp_path: Path) -> Callable[[], EventLog]:
        return lambda: SqliteEventLog.in_data_dir(tmp_path / "data")


async def test_events_survive_reopening_the_file(tmp_path: Path) -> None:
    log = SqliteEventLog.in_data_dir(tmp_path)
    await log.append([submitted("a"), submitted("b")])
    await log.close()
    reopened = SqliteEventLog.in_data_dir(tmp_path)
    assert [r.offset for r in await reopened.read()] == [1, 2]
    assert await reopened.append([submitted("c")]) == [3]
    await reopened.close()


async def test_the_file_is_in_wal_mode_under_the_data_dir(tmp_path: Path) -> None:
    log = SqliteEventLog.in_data_dir(tmp_path / "park-data")
    assert log.path == tmp_path / "park-data" / "events.sqlite3"
    mode = log._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    await log.close()
