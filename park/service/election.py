"""Choosing the one scheduler leader through a Kafka consumer group.

Every scheduler candidate joins one consumer group on a leader topic with a single
partition; the group coordinator gives that partition to exactly one member, and that
member leads. A leader that dies stops heartbeating and is dropped after the session
timeout; the partition then goes to a standby. A member that stops cleanly leaves the
group at once. Being deposed is only learned at the next heartbeat, so for a moment two
processes may both think they lead: that is safe, because the fold ignores a second grant
of a unit and a second outcome of a job (first one wins).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from park.events.kafka import KafkaSettings, create_topic

log = logging.getLogger("park.scheduler")

Callback = Callable[[], Awaitable[None]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, tp: TopicPartition, elected: Callback, deposed: Callback) -> None:
        self.tp = tp
        self.elected = elected
        self.deposed = deposed
        self.leading = False

    async def on_partitions_revoked(self, revoked: object) -> None:
        if self.leading:
            self.leading = False
            await self.deposed()

    async def on_partitions_assigned(self, assigned: object) -> None:
        if self.tp in assigned and not self.leading:  # type: ignore[operator]
            self.leading = True
            await self.elected()


class KafkaElection:
    """Run `elected` when this process becomes the leader, `deposed` when it stops being
    it (also when `run` is cancelled)."""

    def __init__(self, settings: KafkaSettings, name: str, *, role: str | None = None) -> None:
        """`role`: elect the leader of something else than the scheduler (e.g.
        `notifier`), on its own topic and group."""
        if role is not None:
            settings = dataclasses.replace(settings, topic=f"{settings.topic}.{role}")
        self.settings = settings
        self.name = name

    async def run(self, elected: Callback, deposed: Callback) -> None:
        s = self.settings
        while True:
            try:
                await create_topic(s, s.leader_topic)
                break
            except Exception as err:  # the broker may not be up yet
                log.warning("cannot create the leader topic %s: %s; retrying", s.leader_topic, err)
                await asyncio.sleep(1.0)
        tp = TopicPartition(s.leader_topic, 0)
        listener = _Listener(tp, elected, deposed)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            group_id=s.leader_group,
            client_id=self.name,
            enable_auto_commit=False,
            request_timeout_ms=s.request_timeout_ms,
            **s.group_timeouts(),
        )
        await consumer.start()
        try:
            consumer.subscribe([s.leader_topic], listener=listener)
            while True:  # nothing is ever published there; polling keeps the membership
                try:
                    await consumer.getmany(timeout_ms=1000)
                except Exception as err:
                    log.warning("scheduler election: %s", err)
                    await asyncio.sleep(0.5)
        finally:
            if listener.leading:
                listener.leading = False
                with contextlib.suppress(Exception):
                    await deposed()
            with contextlib.suppress(Exception):
                await consumer.stop()  # leaves the group: a standby takes over at once
