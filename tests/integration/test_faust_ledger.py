"""The faust-streaming billing app (a separate process, on the real broker) folds park's
topic with the core's own fold: its per-user totals equal the core ledger's, a duplicate
completion counted by neither."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from park.commands import UnitReport
from park.domain import Priority
from park.events.kafka import KafkaEventLog
from park.events.schema import UnitCompleted
from park.faust_ledger import TOTALS, user_totals
from tests.kafka_fixture import kafka_url, unique_topic
from tests.service.test_following import cluster, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def topic_exists(bootstrap: str, topic: str) -> bool:
    """Without fetching its metadata, which makes Tansu auto-create it (with 4 partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()


async def changelog_totals(bootstrap: str, topic: str, timeout: float) -> dict[str, Any]:
    """The latest value of every key of the faust Table, read from its changelog."""
    if not await topic_exists(bootstrap, topic):
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    latest: dict[str, Any] = {}
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200)
            highwater = consumer.highwater(tp)
            if not batch and highwater is not None and highwater <= await consumer.position(tp):
                break
            for record in batch.get(tp, []):
                latest[record.key.decode().strip('"')] = json.loads(record.value)
    finally:
        await consumer.stop()
    return latest


async def test_faust_totals_equal_the_core_ledger(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = unique_topic("park-faust")
    async with cluster(kafka_bootstrap) as c:
        c.url = kafka_url(kafka_bootstrap, topic)
        await c.add(lead=True)
        api = await c.add(lead=False)
        jobs = []
        for user, priority, n in (("ann", Priority.NORMAL, 6), ("bob", Priority.FREE, 4)):
            spec = {"function": "park.builtins:sleep", "inputs": [0.0] * n, "chunk": 1}
            job = await api.submit(user=user, kind="map", spec=spec, priority=priority)
            jobs.append(job.id)
        worker = await api.register_worker(name="w", cpus=1)
        done: list[UnitCompleted] = []
        while len(done) < 10:
            leased = await api.lease(worker, 10, wait=5.0)
            await api.report(
                worker, [UnitReport(lu.unit.id, True, [0.0], cpu_seconds=0.25) for lu in leased]
            )
            records = await api.log.read(after=0, limit=100_000)
            done = [r.event for r in records if isinstance(r.event, UnitCompleted)]
        await until(lambda: all(not api.state.jobs[j].active for j in jobs))
        # A duplicate completion (at-least-once delivery somewhere): both folds ignore it.
        writer = KafkaEventLog(c.url)
        await writer.append([done[0].model_copy(update={"cpu_seconds": 99.0, "charged": 99.0})])
        await writer.close()
        await api.sync()
        core = {user: user_totals(api.state, user) for user in ("ann", "bob")}
        # Charged by slot time (the time each unit held the worker, at most grant to
        # report), at normal's price of 1 credit per slot-second; bob's free units cost 0.
        ann_slot = sum(e.slot_seconds for e in done if e.job_id == jobs[0])
        assert 0.0 < ann_slot <= 6 * 0.25
        assert core["ann"]["charged"] == pytest.approx(ann_slot * 1.0)
        assert core["bob"]["charged"] == 0.0
        assert core["ann"]["units"] == 6 and core["bob"]["units"] == 4

        app_id = f"park-ledger-{topic}"
        env = {**os.environ, "PARK_LOG": c.url, "PARK_FAUST_APP_ID": app_id,
               "PARK_FAUST_DATA": str(tmp_path / "faust")}  # fmt: skip
        with (tmp_path / "faust.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "park.faust_ledger", "worker", "--loglevel", "warn"],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            changelog = f"{app_id}-ledger-changelog"
            faust: dict[str, Any] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "faust.log").read_text()[-3000:]
                faust = await changelog_totals(kafka_bootstrap, changelog, timeout=5)
                if set(faust) == {"ann", "bob"} and all(
                    faust[u][name] == pytest.approx(core[u][name]) for u in core for name in TOTALS
                ):
                    break
                await asyncio.sleep(0.5)
            for user in ("ann", "bob"):
                for name in TOTALS:
                    assert faust[user][name] == pytest.approx(core[user][name]), (user, name)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
