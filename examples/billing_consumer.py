"""A per-user, per-day bill from park's Kafka topic, by a consumer that is not park.

It uses only aiokafka and the standard library, and what docs/events.md publishes: the
event types and fields, and the reading rules (first report wins; a grant counts only for
a queued unit and a joined worker, a backup grant for a unit leased to another worker; a
completion counts only from a worker that held the unit, while its job is unfinished).
Its totals therefore equal `park ledger`'s.

    python examples/billing_consumer.py --bootstrap HOST:9092 --topic park-events
    python examples/billing_consumer.py --bootstrap HOST:9092 --json   # machine-readable

It reads the topic from the start up to its end (the fetch high watermark) and prints per
UTC day, user and priority the units, the slot-seconds charged for (a CPU held), the
core-seconds used (CPU time) and the credits, then a total per user.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

JOB_FINISHED = ("job.completed", "job.failed", "job.cancelled")


@dataclass
class Unit:
    job_id: str
    status: str = "queued"  # queued, leased, done, failed
    holder: str | None = None
    backup: str | None = None  # a backup attempt's worker, beside the holder's
    holders: set[str] = field(default_factory=set)
    priority: str = "free"


@dataclass
class Line:
    units: int = 0
    core_seconds: float = 0.0  # CPU time used
    slot_seconds: float = 0.0  # time charged: a CPU held (wall time, or CPU time if more)
    credits: float = 0.0


class Bill:
    """The reading rules of docs/events.md, folded over the events in log order."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}  # job -> user
        self.finished: set[str] = set()
        self.units: dict[str, Unit] = {}
        self.units_of: dict[str, list[str]] = defaultdict(list)
        self.workers: dict[str, bool] = {}  # worker -> still joined
        self.lines: dict[tuple[str, str, str], Line] = defaultdict(Line)  # day, user, priority
        self.offset = 0

    def add(self, offset: int, event: dict[str, Any]) -> None:
        self.offset = offset
        kind = event.get("type")
        if kind == "job.submitted":
            self.owner.setdefault(event["job_id"], event["user"])
        elif kind == "units.planned":
            job = event["job_id"]
            if job in self.owner and job not in self.finished:
                for planned in event["units"]:
                    if planned["unit_id"] not in self.units:
                        self.units[planned["unit_id"]] = Unit(job)
                        self.units_of[job].append(planned["unit_id"])
        elif kind == "units.split":  # a queued unit replaced by pieces (the same work)
            unit = self.units.get(event["unit_id"])
            if unit and unit.status == "queued" and not unit.holders:
                del self.units[event["unit_id"]]
                for planned in event["units"]:
                    self.units[planned["unit_id"]] = Unit(unit.job_id)
                    self.units_of[unit.job_id].append(planned["unit_id"])
        elif kind in JOB_FINISHED:
            job = event["job_id"]
            if job in self.owner and job not in self.finished:
                self.finished.add(job)
                for unit_id in self.units_of.pop(job, []):
                    self.units.pop(unit_id, None)
        elif kind == "worker.joined":
            self.workers.setdefault(event["worker_id"], True)
        elif kind in ("worker.left", "worker.expired"):
            if event["worker_id"] in self.workers:
                self.workers[event["worker_id"]] = False
        elif kind == "unit.granted" and event.get("backup"):
            # a second attempt of a leased unit on another worker; either may complete it
            unit, worker = self.units.get(event["unit_id"]), event["worker_id"]
            if (
                unit and unit.status == "leased" and unit.backup is None
                and unit.holder != worker and self.workers.get(worker)
            ):  # fmt: skip
                unit.backup = worker
                unit.holders.add(worker)
        elif kind == "unit.granted":
            unit = self.units.get(event["unit_id"])
            if unit and unit.status == "queued" and self.workers.get(event["worker_id"]):
                unit.status, unit.holder = "leased", event["worker_id"]
                unit.holders.add(event["worker_id"])
                unit.priority = event.get("priority", "free")
        elif kind in ("unit.lease_expired", "unit.failed"):
            unit = self.units.get(event["unit_id"])
            if unit and unit.status == "leased" and unit.backup == event["worker_id"]:
                unit.backup = None  # the backup attempt is let go; the first runs on
            elif unit and unit.status == "leased" and unit.holder == event["worker_id"]:
                # a failed attempt with `retry` is queued again, like a lost lease (unless
                # a backup attempt runs: it becomes the unit's one attempt)
                retried = kind == "unit.lease_expired" or event.get("retry", False)
                if retried and unit.backup is not None:
                    unit.holder, unit.backup = unit.backup, None
                else:
                    unit.status = "queued" if retried else "failed"
                    unit.holder = unit.backup = None
        elif kind == "unit.completed":
            unit = self.units.get(event["unit_id"])
            if unit and unit.status in ("leased", "queued") and event["worker_id"] in unit.holders:
                unit.status, unit.holder, unit.backup = "done", None, None
                day = datetime.fromtimestamp(event["at"], UTC).date().isoformat()
                line = self.lines[(day, self.owner[unit.job_id], unit.priority)]
                line.units += 1
                line.core_seconds += event["cpu_seconds"]
                line.slot_seconds += event.get("slot_seconds", 0.0)
                line.credits += event["charged"]
        # any other type (work.requested, lease.extended, ...) does not change a bill

    def totals(self) -> dict[str, Line]:
        users: dict[str, Line] = defaultdict(Line)
        for (_, user, _), line in sorted(self.lines.items()):
            total = users[user]
            total.units += line.units
            total.core_seconds += line.core_seconds
            total.slot_seconds += line.slot_seconds
            total.credits += line.credits
        return dict(users)


async def read_topic(bootstrap: str, topic: str, bill: Bill, idle_seconds: float) -> None:
    """Fold the topic's one partition from the start to its high watermark."""
    partition = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        idle_since = asyncio.get_running_loop().time()
        while True:
            batches = await consumer.getmany(partition, timeout_ms=500, max_records=10_000)
            for record in batches.get(partition, []):
                bill.add(record.offset + 1, json.loads(record.value))  # park offset
                idle_since = asyncio.get_running_loop().time()
            end = consumer.highwater(partition)
            if end is not None and await consumer.position(partition) >= end:
                return  # read everything the broker had
            if asyncio.get_running_loop().time() - idle_since > idle_seconds:
                return
    finally:
        await consumer.stop()


def as_text(bill: Bill) -> str:
    rows = [f"{'day':<10}  {'user':<12} {'priority':<8} {'units':>6} {'slot-s':>10} "
            f"{'core-s':>10} {'credits':>10}"]  # fmt: skip
    for (day, user, priority), line in sorted(bill.lines.items()):
        rows.append(f"{day:<10}  {user:<12} {priority:<8} {line.units:>6} "
                    f"{line.slot_seconds:>10.3f} {line.core_seconds:>10.3f} "
                    f"{line.credits:>10.3f}")  # fmt: skip
    for user, total in sorted(bill.totals().items()):
        rows.append(f"{'total':<10}  {user:<12} {'':<8} {total.units:>6} "
                    f"{total.slot_seconds:>10.3f} {total.core_seconds:>10.3f} "
                    f"{total.credits:>10.3f}")  # fmt: skip
    rows.append(f"(log read to offset {bill.offset})")
    return "\n".join(rows)


def as_json(bill: Bill) -> str:
    def line(value: Line) -> dict[str, Any]:
        return {"units": value.units, "slot_seconds": value.slot_seconds,
                "core_seconds": value.core_seconds, "credits": value.credits}  # fmt: skip

    days = [{"day": day, "user": user, "priority": priority, **line(value)}
            for (day, user, priority), value in sorted(bill.lines.items())]  # fmt: skip
    users = {user: line(total) for user, total in sorted(bill.totals().items())}
    return json.dumps({"days": days, "users": users, "offset": bill.offset}, indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of a Kafka broker")
    parser.add_argument("--topic", default="park-events")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="stop after this long without a new event")  # fmt: skip
    args = parser.parse_args(argv)
    bill = Bill()
    asyncio.run(read_topic(args.bootstrap, args.topic, bill, args.idle_seconds))
    print(as_json(bill) if args.json else as_text(bill))
    return 0


if __name__ == "__main__":
    sys.exit(main())
