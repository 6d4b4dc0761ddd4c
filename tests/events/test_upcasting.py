"""Upcasting on read: an event stored in an older version of its type reads back, from
every log adapter, as the current version, and folds like one.

The old version here is made up (every real type is still at v1): suppose `unit.completed`
v1 had counted CPU in milliseconds (`cpu_ms`) and called the charge `credits`, and v2
renamed them to today's `cpu_seconds` and `charged`. The stored bytes stay v1; a reader
with the v1 -> v2 upcaster registered sees v2.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from park.domain import Priority
from park.events.kafka import KafkaEventLog
from park.events.log import EventLog, Recorded
from park.events.memory import MemoryEventLog
from park.events.schema import (
    JobSubmitted,
    PlannedUnit,
    UnitCompleted,
    UnitGranted,
    UnitsPlanned,
    WorkerJoined,
    event_from_json,
)
from park.events.sqlite import SqliteEventLog
from park.events.upcasting import UPCASTERS, upcast
from park.replay import replay
from tests.kafka_fixture import unique_topic

OLD_COMPLETION: dict[str, Any] = {
    "type": "unit.completed", "v": 1, "at": 110.0, "unit_id": "j1/0", "job_id": "j1",
    "worker_id": "w1", "result": [4], "cpu_ms": 1500, "credits": 1.5,
}  # fmt: skip

SPEC = {"function": "park.builtins:sleep", "inputs": [2], "chunk": 1}
PAYLOAD = {"function": "park.builtins:sleep", "start": 0, "items": [2]}
HISTORY = [
    JobSubmitted(at=100.0, job_id="j1", user="ann", kind="map", spec=SPEC,
                 priority=Priority.NORMAL),
    UnitsPlanned(at=100.0, job_id="j1",
                 units=[PlannedUnit(unit_id="j1/0", payload=PAYLOAD)]),
    WorkerJoined(at=101.0, worker_id="w1", name="node1:42", cpus=1),
    UnitGranted(at=102.0, unit_id="j1/0", job_id="j1", worker_id="w1", lease_deadline=132.0,
                priority=Priority.NORMAL, price=1.0, reserved=1.0),
]  # fmt: skip


def completion_v1_to_v2(document: dict[str, Any]) -> dict[str, Any]:
    document["cpu_seconds"] = document.pop("cpu_ms") / 1000
    document["charged"] = document.pop("credits")
    document["v"] = 2
    return document


async def read_all(log: EventLog) -> list[Recorded]:
    """Everything on the log (a Kafka read returns what one fetch brought)."""
    last, records = await log.last_offset(), []
    for _ in range(100):
        if len(records) >= last:
            break
        records += await log.read(after=len(records))
    return records


@pytest.fixture
def old_completions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(UPCASTERS, ("unit.completed", 1), completion_v1_to_v2)


async def _sqlite(tmp_path: Any, request: pytest.FixtureRequest) -> EventLog:
    log = SqliteEventLog(tmp_path / "events.sqlite3")
    await log.append(HISTORY)
    with sqlite3.connect(tmp_path / "events.sqlite3") as db:  # as the older park wrote it
        db.execute(
            "INSERT INTO events(type, at, job_id, body) VALUES (?,?,?,?)",
            ("unit.completed", 110.0, "j1", json.dumps(OLD_COMPLETION)),
        )
    return log


async def _kafka(tmp_path: Any, request: pytest.FixtureRequest) -> EventLog:
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    topic = unique_topic("park-upcast")
    log = KafkaEventLog(f"kafka://{bootstrap}/{topic}")
    await log.append(HISTORY)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(OLD_COMPLETION).encode(), partition=0)
    finally:
        await producer.stop()
    return log


async def _memory(tmp_path: Any, request: pytest.FixtureRequest) -> EventLog:
    log = MemoryEventLog()
    await log.append(HISTORY)
    log._bodies.append(json.dumps(OLD_COMPLETION))  # it keeps events as their stored JSON
    return log


@pytest.fixture(params=[_sqlite, _kafka, _memory], ids=["sqlite", "kafka", "memory"])
async def old_log(
    request: pytest.FixtureRequest, tmp_path: Any, old_completions: None
) -> AsyncIterator[EventLog]:
    log = await request.param(tmp_path, request)
    try:
        yield log
    finally:
        await log.close()


@pytest.mark.anyio
async def test_every_log_reads_an_old_event_as_the_current_version(old_log: EventLog) -> None:
    records = await read_all(old_log)
    assert [r.offset for r in records] == [1, 2, 3, 4, 5]
    completion = records[-1].event
    assert completion == UnitCompleted(
        v=2, at=110.0, unit_id="j1/0", job_id="j1", worker_id="w1", result=[4],
        cpu_seconds=1.5, charged=1.5,
    )  # fmt: skip
    # and it folds as one: the unit is done and ann is charged for it
    state = (await replay(old_log)).state
    assert state.jobs["j1"].units_done == 1
    entry = state.ledger[("ann", Priority.NORMAL)]
    assert (entry.charged, entry.core_seconds, entry.units, entry.reserved) == (1.5, 1.5, 1, 0.0)


def test_without_its_upcaster_the_old_event_does_not_read() -> None:
    with pytest.raises(ValidationError, match="cpu_seconds"):
        event_from_json(json.dumps(OLD_COMPLETION))


def test_current_events_are_left_as_they_are(old_completions: None) -> None:
    current = UnitCompleted(v=2, at=1.0, unit_id="u", job_id="j", worker_id="w", result=None,
                            cpu_seconds=2.0, charged=4.0)  # fmt: skip
    assert event_from_json(current.model_dump_json()) == current
    assert event_from_json(HISTORY[0].model_dump_json()) == HISTORY[0]


def test_upcasters_chain_version_by_version(monkeypatch: pytest.MonkeyPatch) -> None:
    def v1_to_v2(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "v": 2, "steps": ["1->2"]}

    def v2_to_v3(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "v": 3, "steps": [*d["steps"], "2->3"]}

    monkeypatch.setitem(UPCASTERS, ("demo.thing", 1), v1_to_v2)
    monkeypatch.setitem(UPCASTERS, ("demo.thing", 2), v2_to_v3)
    chained = {"type": "demo.thing", "v": 3, "steps": ["1->2", "2->3"]}
    assert upcast({"type": "demo.thing", "v": 1}) == chained
    assert upcast({"type": "demo.thing", "v": 3}) == {"type": "demo.thing", "v": 3}

    monkeypatch.setitem(UPCASTERS, ("demo.stuck", 1), lambda d: d)
    with pytest.raises(ValueError, match="did not raise `v`"):
        upcast({"type": "demo.stuck", "v": 1})
