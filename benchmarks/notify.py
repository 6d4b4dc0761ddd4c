"""Notification throughput: how fast the notifier delivers `each` mails and daily digests
to a real SMTP server (aiosmtpd on loopback), and what the pure planner costs.

A ParkService on a fresh SQLite log; N jobs end (cancelled: the quickest end), half asking
for `each`, half for the digest of one of A addresses; the clock is passed in, so the
digest time comes at once. Figures side by side: `each` mails per second, digests per
second (and jobs per digest), log events per message, and the planner's `due()` time over
a book of that size.

    python benchmarks/notify.py                 # N=400 jobs, A=20 addresses
    python benchmarks/notify.py --jobs 2000 --addresses 100
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosmtpd.controller import Controller

from park.events.sqlite import SqliteEventLog
from park.notify import plan
from park.notify.notifier import Notifier, NotifySettings
from park.notify.plan import DigestSchedule
from park.notify.send import SmtpSettings
from park.service.engine import ParkService
from tests.support import free_port

T0 = dt.datetime(2026, 11, 26, 7, 0, tzinfo=dt.UTC).timestamp()


class Count:
    def __init__(self) -> None:
        self.n = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.n += 1
        return "250 OK"


async def run(jobs: int, addresses: int) -> dict[str, float]:
    counter = Count()
    port = free_port()
    smtpd = Controller(counter, hostname="127.0.0.1", port=port)
    smtpd.start()
    now = [T0]
    with tempfile.TemporaryDirectory() as tmp:
        service = ParkService(SqliteEventLog(Path(tmp) / "events.sqlite3"), clock=lambda: now[0])
        await service.start()
        settings = NotifySettings(
            smtp=SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"),
            schedule=DigestSchedule(dt.time(8, 0), dt.UTC),
        )
        notifier = Notifier(service, settings, clock=lambda: now[0])
        spec = {"function": "park.builtins:sleep", "inputs": [0]}
        for i in range(jobs):
            notify = (
                {"email": f"e{i}@lab.example", "when": "each"}
                if i % 2 == 0
                else f"d{i % addresses}@lab.example"
            )
            job = await service.submit(user="u", kind="map", spec=spec, notify=notify)
            await service.cancel(job.id, by="u")
        book = service.state.notices
        started = time.perf_counter()
        for _ in range(20):
            plan.due(book, now[0] + 2 * 3600, settings.schedule, channels={"email"})
        planner_ms = (time.perf_counter() - started) / 20 * 1000
        offset = service.state.offset
        started = time.perf_counter()
        each_sent = await notifier.tick()
        each_s = time.perf_counter() - started
        each_events = service.state.offset - offset
        now[0] = T0 + 3600 + 1  # 08:00:01: the digest time
        offset = service.state.offset
        started = time.perf_counter()
        digests = await notifier.tick()
        digest_s = time.perf_counter() - started
        digest_events = service.state.offset - offset
        await service.stop()
    smtpd.stop()
    assert counter.n == each_sent + digests
    return {
        "each": each_sent, "each_s": each_s, "each_events": each_events,
        "digests": digests, "digest_s": digest_s, "digest_events": digest_events,
        "digest_jobs": (jobs - each_sent) / max(digests, 1), "planner_ms": planner_ms,
        "book": len(book.notices) + sum(len(q) for q in book.waiting.values()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--addresses", type=int, default=20)
    args = parser.parse_args()
    r = asyncio.run(run(args.jobs, args.addresses))
    print(f"{args.jobs} jobs ended; planner due() over {r['book']:.0f} notices/waiting jobs: "
          f"{r['planner_ms']:.2f} ms")  # fmt: skip
    print("| messages | count | wall s | per second | log events per message |")
    print("|---|---:|---:|---:|---:|")
    print(f"| `each` (one job each) | {r['each']:.0f} | {r['each_s']:.2f} | "
          f"{r['each'] / r['each_s']:.0f} | {r['each_events'] / r['each']:.1f} |")  # fmt: skip
    print(f"| digests ({r['digest_jobs']:.0f} jobs each) | {r['digests']:.0f} | "
          f"{r['digest_s']:.2f} | {r['digests'] / r['digest_s']:.0f} | "
          f"{r['digest_events'] / r['digests']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
