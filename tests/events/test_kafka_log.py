"""The Kafka adapter passes the same contract as the SQLite log, on a real broker."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from park.events.kafka import KafkaEventLog, KafkaSettings
from park.events.log import EventLog
from tests.events.log_contract import EventLogContract, submitted
from tests.kafka_fixture import unique_topic

pytestmark = pytest.mark.anyio


class TestKafkaEventLog(EventLogContract):
    @pytest.fixture
    def make_log(self, kafka_bootstrap: str) -> Callable[[], EventLog]:
        topic = unique_topic()
        return lambda: KafkaEventLog(f"kafka://{kafka_bootstrap}/{topic}")


async def test_a_second_client_reads_what_the_first_appended(kafka_bootstrap: str) -> None:
    url = f"kafka://{kafka_bootstrap}/{unique_topic()}"
    writer, reader = KafkaEventLog(url), KafkaEventLog(url)
    try:
        assert await writer.append([submitted("a"), submitted("b")]) == [1, 2]
        assert await reader.last_offset() == 2
        assert [r.offset for r in await reader.read(after=0)] == [1, 2]
        assert await reader.wait(after=2, timeout=0.1) is False
        assert await writer.append([submitted("c")]) == [3]
        assert await reader.wait(after=2, timeout=5) is True
        assert [r.event.job_id for r in await reader.read(after=2)] == ["c"]  # type: ignore[union-attr]
    finally:
        await writer.close()
        await reader.close()


async def test_batches_from_two_clients_stay_contiguous(kafka_bootstrap: str) -> None:
    import asyncio

    url = f"kafka://{kafka_bootstrap}/{unique_topic()}"
    a, b = KafkaEventLog(url), KafkaEventLog(url)
    try:
        batches = await asyncio.gather(
            *(
                log.append([submitted(f"{n}-{i}") for i in range(20)])
                for n in range(6)
                for log in (a, b)
            )
        )
        for batch in batches:
            assert batch == list(range(batch[0], batch[0] + 20))
        offsets: list[int] = []
        while records := await a.read(after=len(offsets), limit=1000):
            offsets.extend(r.offset for r in records)
        assert offsets == list(range(1, 241))
    finally:
        await a.close()
        await b.close()


def test_log_urls() -> None:
    s = KafkaSettings.from_url(
        "kafka://h1:9092,h2:9092/jobs?session_timeout_ms=2000&compression=lz4"
    )
    assert (s.bootstrap, s.topic, s.session_timeout_ms, s.compression) == (
        "h1:9092,h2:9092",
        "jobs",
        2000,
        "lz4",
    )
    assert KafkaSettings.from_url("kafka://h:1").topic == "park-events"
    with pytest.raises(ValueError):
        KafkaSettings.from_url("kafka://h:1/t?nonsense=1")


def test_kafka_mode_fields_are_written_only_when_set() -> None:
    """A single server's log reads as before (an older park parses it); an ask and a
    decision keep every field, zeros included."""
    from park.events.schema import UnitGranted, WorkRequested, event_from_json, event_to_json

    plain = WorkRequested(at=1.0, worker_id="w", max_units=2)
    grant = UnitGranted(
        at=1.0, unit_id="j/0", job_id="j", worker_id="w", lease_deadline=2.0, price=0, reserved=0
    )
    for event in (plain, grant):
        keys = set(json.loads(event_to_json(event)))
        assert not keys & {"request_id", "pending", "wait", "granted", "basis"}
    ask = WorkRequested(at=1.0, worker_id="w", max_units=2, request_id="r", pending=True, wait=9)
    decision = WorkRequested(at=2.0, worker_id="w", max_units=2, request_id="r", granted=0, basis=0)
    for event in (plain, grant, ask, decision):
        assert event_from_json(event_to_json(event)) == event
    assert '"granted":0' in event_to_json(decision) and '"basis":0' in event_to_json(decision)


async def test_an_event_too_large_for_a_record_batch_is_refused_whole(
    kafka_bootstrap: str,
) -> None:
    """Refused before anything of its batch is sent (the API answers 413), not half of
    the batch on the topic."""
    from park.events.log import EventTooLarge
    from park.events.schema import JobSubmitted

    log = KafkaEventLog(f"kafka://{kafka_bootstrap}/{unique_topic()}?max_batch_bytes=100000")
    try:
        large = JobSubmitted(at=1.0, job_id="big", user="ann", kind="map",
                             spec={"function": "m:f", "inputs": ["x" * 200_000]})  # fmt: skip
        with pytest.raises(EventTooLarge):
            await log.append([submitted("a"), large])
        assert await log.last_offset() == 0
        assert await log.append([submitted("b")]) == [1]
    finally:
        await log.close()
