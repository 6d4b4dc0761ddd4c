"""The distributed `EventLog`: one ordered Kafka topic (aiokafka) is the source of truth.

The topic has one partition, created explicitly (an auto-created topic may get several,
and order only holds within a partition). A park offset is the Kafka offset + 1, so offsets
start at 1 as in the SQLite log.

A batch is sent as one Kafka record batch, which the broker appends as a unit, so the
events of one `append` stay contiguous and in order even with several writers. Batches
larger than `max_batch_bytes` are split into several record batches, sent in order; only
then can another writer's events land between them. No idempotent producer and no
transactions are used: Tansu (the broker the tests run on) has neither, and correctness
does not need them — the folds ignore duplicate or conflicting facts, first one wins.

"Caught up" is never judged with `end_offsets`/`seek_to_end` (wrong on Tansu: they give
the base offset of the last record batch + 1): `last_offset` asks for that figure, then
fetches from just before it, and takes the fetch's high watermark, which is exact on
Tansu and on Apache Kafka alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from park.events.log import EventLog, EventTooLarge, LogUnavailable, Recorded
from park.events.schema import Event, event_from_json, event_to_json

log = logging.getLogger("park.events.kafka")

DEFAULT_TOPIC = "park-events"
# What a record batch holds besides its one record's value (headers, lengths, CRC).
_BATCH_OVERHEAD = 256


class KafkaLogError(LogUnavailable):
    """The broker did not answer in time, or the topic is unfit to be park's log."""


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the log lives and how to talk to it; parsed from
    `kafka://HOST:PORT[,HOST:PORT...][/TOPIC][?option=value&...]`.

    Options: `replication` (of the topic when park creates it), `compression` (gzip, lz4,
    zstd, snappy), `fetch_wait_ms` (how long the broker may hold an empty fetch: the
    latency of a follower seeing a new event; Tansu answers an empty fetch only at the end
    of this wait, so keep it small), and the consumer-group timeouts of the scheduler
    election (`session_timeout_ms`, `heartbeat_interval_ms`, `rebalance_timeout_ms`; a
    dead leader is replaced after about the session timeout)."""

    bootstrap: str
    topic: str = DEFAULT_TOPIC
    replication: int = 1
    compression: str | None = None
    fetch_wait_ms: int = 20
    max_batch_bytes: int = 1_000_000
    request_timeout_ms: int = 30_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int = 10_000

    @classmethod
    def from_url(cls, url: str) -> KafkaSettings:
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise ValueError(f"not a kafka://HOST:PORT[/topic] log URL: {url!r}")
        options: dict[str, Any] = {}
        topic = parts.path.strip("/")
        if topic:
            options["topic"] = topic
        ints = {
            "replication", "fetch_wait_ms", "max_batch_bytes", "request_timeout_ms",
            "session_timeout_ms", "heartbeat_interval_ms", "rebalance_timeout_ms",
        }  # fmt: skip
        for key, values in parse_qs(parts.query, strict_parsing=False).items():
            value = values[-1]
            if key in ints:
                options[key] = int(value)
            elif key == "compression":
                options[key] = value or None
            else:
                raise ValueError(f"unknown kafka log option {key!r} in {url!r}")
        return cls(bootstrap=parts.netloc, **options)

    @property
    def leader_topic(self) -> str:
        """The scheduler election's topic: whoever owns its one partition leads."""
        return f"{self.topic}.leader"

    @property
    def leader_group(self) -> str:
        return f"{self.topic}.scheduler"

    def group_timeouts(self) -> dict[str, int]:
        return {
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
        }


async def create_topic(settings: KafkaSettings, topic: str) -> None:
    """Create `topic` with one partition unless it exists; refuse one with more."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap, request_timeout_ms=settings.request_timeout_ms
    )
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(topic, num_partitions=1, replication_factor=settings.replication)]
            )
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = described[0].get("partitions", []) if described else []
    if len(partitions) != 1:
        raise KafkaLogError(
            f"topic {topic!r} has {len(partitions)} partitions; park's log needs exactly one "
            "(order holds only within a partition)"
        )


class _Reader:
    """One consumer positioned on the log, with what `wait` fetched but nobody read yet."""

    def __init__(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        self.consumer = consumer
        self.tp = tp
        self.lock = asyncio.Lock()
        self.next = 0  # the Kafka offset the next record handed out will have
        self.stash: deque[Any] = deque()

    def serves(self, kafka_offset: int) -> bool:
        if self.stash:
            return bool(self.stash[0].offset <= kafka_offset <= self.next)
        return self.next == kafka_offset

    def position_at(self, kafka_offset: int) -> None:
        """The stash holds consecutive records ending just before `next`."""
        if self.stash and self.stash[0].offset <= kafka_offset < self.next:
            while self.stash and self.stash[0].offset < kafka_offset:
                self.stash.popleft()
            return
        self.stash.clear()
        if self.next != kafka_offset:
            self.consumer.seek(self.tp, kafka_offset)
            self.next = kafka_offset

    async def take(self, limit: int, timeout_ms: int) -> list[Any]:
        if self.stash:
            return [self.stash.popleft() for _ in range(min(limit, len(self.stash)))]
        fetched = await self.consumer.getmany(self.tp, timeout_ms=timeout_ms, max_records=limit)
        records: list[Any] = fetched.get(self.tp, [])
        if records:
            self.next = records[-1].offset + 1
        return records

    async def peek(self, timeout_ms: int) -> bool:
        """Fetch what is there without handing it out (kept for the next `take`)."""
        if self.stash:
            return True
        fetched = await self.consumer.getmany(self.tp, timeout_ms=timeout_ms)
        records = fetched.get(self.tp, [])
        self.stash.extend(records)
        if records:
            self.next = records[-1].offset + 1
        return bool(records)


class KafkaEventLog(EventLog):
    """An `EventLog` on one single-partition Kafka topic. Connects on first use."""

    def __init__(self, settings: KafkaSettings | str, *, create: bool = True) -> None:
        self.settings = KafkaSettings.from_url(settings) if isinstance(settings, str) else settings
        self.topic = self.settings.topic
        self._create = create
        self._tp = TopicPartition(self.topic, 0)
        self._started = False
        self._start_lock = asyncio.Lock()
        self._append_lock = asyncio.Lock()
        self._probe_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._tail: _Reader | None = None  # sequential reads and waits (a follower's tail)
        self._random: _Reader | None = None  # reads elsewhere (audit pages, replays)
        self._probe: AIOKafkaConsumer | None = None
        # The newest offset this process appended, read or saw: a lower bound of the log's
        # end, so a `wait` behind it returns at once without fetching.
        self._known_end = 0

    # -- connection -----------------------------------------------------------------------

    def _consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_wait_ms,
            request_timeout_ms=s.request_timeout_ms,
            max_partition_fetch_bytes=max(1 << 20, 2 * s.max_batch_bytes),
        )

    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            s = self.settings
            if self._create:
                await create_topic(s, self.topic)
            producer = AIOKafkaProducer(
                bootstrap_servers=s.bootstrap,
                acks="all",
                enable_idempotence=False,
                linger_ms=0,
                compression_type=s.compression,
                max_batch_size=s.max_batch_bytes,
                max_request_size=max(1 << 20, 2 * s.max_batch_bytes),
                request_timeout_ms=s.request_timeout_ms,
            )
            await producer.start()
            self._producer = producer
            readers = []
            for _ in range(2):
                consumer = self._consumer()
                await consumer.start()
                consumer.assign([self._tp])
                consumer.seek(self._tp, 0)
                readers.append(_Reader(consumer, self._tp))
            self._tail, self._random = readers
            self._random.consumer.pause(self._tp)
            self._probe = self._consumer()
            await self._probe.start()
            self._probe.assign([self._tp])
            self._probe.pause(self._tp)
            self._started = True

    async def close(self) -> None:
        async with self._start_lock:
            clients: list[Any] = [self._producer, self._probe]
            clients += [r.consumer for r in (self._tail, self._random) if r is not None]
            self._producer = self._probe = self._tail = self._random = None
            self._started = False
            for client in clients:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.stop()

    async def _ready(self) -> None:
        if not self._started:
            await self.start()

    # -- the port -------------------------------------------------------------------------

    async def append(self, events: Sequence[Event]) -> list[int]:
        if not events:
            return []
        await self._ready()
        producer = self._producer
        assert producer is not None
        values = [event_to_json(e).encode() for e in events]
        for value in values:  # before anything of the batch is sent
            if len(value) > self.settings.max_batch_bytes - _BATCH_OVERHEAD:
                raise self._too_large(value)
        async with self._append_lock:  # this process's batches never interleave
            deliveries: list[tuple[int, asyncio.Future[Any]]] = []
            batch, count = producer.create_batch(), 0
            for value in values:
                if batch.append(timestamp=None, key=None, value=value) is None:
                    if count == 0:
                        raise self._too_large(value)
                    deliveries.append((count, await self._send(producer, batch)))
                    batch, count = producer.create_batch(), 0
                    if batch.append(timestamp=None, key=None, value=value) is None:
                        raise self._too_large(value)
                count += 1
            deliveries.append((count, await self._send(producer, batch)))
            offsets: list[int] = []
            for n, delivery in deliveries:
                metadata = await delivery
                offsets.extend(range(metadata.offset + 1, metadata.offset + 1 + n))
        self._known_end = max(self._known_end, offsets[-1])
        return offsets

    async def _send(self, producer: AIOKafkaProducer, batch: Any) -> asyncio.Future[Any]:
        batch.close()  # nothing else may join it: it is appended as one unit
        future: asyncio.Future[Any] = await producer.send_batch(batch, self.topic, partition=0)
        return future

    def _too_large(self, value: bytes) -> EventTooLarge:
        return EventTooLarge(
            f"an event of {len(value)} bytes exceeds max_batch_bytes "
            f"({self.settings.max_batch_bytes})"
        )

    async def read(self, after: int = 0, limit: int = 10_000) -> list[Recorded]:
        await self._ready()
        assert self._tail is not None and self._random is not None
        reader = self._tail if self._tail.serves(after) else self._random
        if limit <= 0:
            return []
        async with reader.lock:
            if reader is self._random:  # idle between reads, not polling the broker
                reader.consumer.resume(self._tp)
            try:
                records = await self._read(reader, after, limit)
            finally:
                if reader is self._random:
                    reader.consumer.pause(self._tp)
        if records:
            self._known_end = max(self._known_end, records[-1].offset + 1)
        return [Recorded(r.offset + 1, event_from_json(r.value)) for r in records]

    async def _read(self, reader: _Reader, after: int, limit: int) -> list[Any]:
        reader.position_at(after)
        records = await reader.take(limit, timeout_ms=2 * self.settings.fetch_wait_ms)
        if records and records[0].offset != after:  # the consumer moved (an offset reset)
            reader.stash.clear()
            reader.consumer.seek(self._tp, after)
            reader.next = after
            records = await reader.take(limit, timeout_ms=2 * self.settings.fetch_wait_ms)
            if records and records[0].offset != after:
                raise KafkaLogError(f"asked for offset {after}, got {records[0].offset}")
        while records and len(records) < limit:  # what is fetched already, up to `limit`
            more = await reader.take(limit - len(records), timeout_ms=0)
            if not more:
                break
            records.extend(more)
        if records or await self.last_offset() <= after:
            return records
        deadline = time.monotonic() + self.settings.request_timeout_ms / 1000
        while not records:
            if time.monotonic() > deadline:
                raise KafkaLogError(f"no answer from {self.settings.bootstrap}")
            records = await reader.take(limit, timeout_ms=200)
        return records

    async def last_offset(self) -> int:
        """The fetch high watermark from just before the reported end (see module doc)."""
        await self._ready()
        probe = self._probe
        assert probe is not None
        async with self._probe_lock:
            end = (await probe.end_offsets([self._tp]))[self._tp]
            if end == 0:
                return self._known_end
            probe.seek(self._tp, end - 1)
            probe.resume(self._tp)
            try:
                deadline = time.monotonic() + self.settings.request_timeout_ms / 1000
                while True:
                    fetched = await probe.getmany(self._tp, timeout_ms=200)
                    if fetched.get(self._tp):
                        break
                    if time.monotonic() > deadline:
                        raise KafkaLogError(f"no answer from {self.settings.bootstrap}")
                highwater = probe.highwater(self._tp) or 0
            finally:
                probe.pause(self._tp)
        self._known_end = max(self._known_end, highwater)
        return self._known_end

    async def wait(self, after: int, timeout: float) -> bool:
        if self._known_end > after:
            return True
        await self._ready()
        tail = self._tail
        assert tail is not None
        deadline = time.monotonic() + timeout
        while True:
            # Short slices, so that reads of the tail get the reader in between.
            async with tail.lock:
                tail.position_at(after)
                slice_ms = max(1, min(100, int((deadline - time.monotonic()) * 1000)))
                if await tail.peek(slice_ms):
                    return True
            if self._known_end > after:
                return True
            if time.monotonic() >= deadline:
                return False
