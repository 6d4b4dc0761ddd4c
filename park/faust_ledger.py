"""Billing and audit on faust-streaming: the core's own ledger fold, in a faust agent whose
per-user totals live in a faust Table (changelog-backed, so other faust apps and billing
jobs can read them).

Optional (`pip install 'park[faust]'`), never imported by the core, never load-bearing:
the service does not read anything this app writes. The agent consumes park's event topic
and folds each event with `ParkState.apply`, the same pure fold the API servers run, so
its totals equal the core ledger's: a duplicate or conflicting event (a second completion,
a grant of a granted unit) is ignored here exactly as there. When the app starts from a
committed offset past what it has folded (a restart), it first folds the gap from the log.

    PARK_LOG=kafka://HOST:PORT/park-events python -m park.faust_ledger worker

Settings come from `PARK_LOG` (bootstrap, topic, consumer-group timeouts); the app id is
`PARK_FAUST_APP_ID` (default `park-ledger-<topic>`), its data directory
`PARK_FAUST_DATA` (default `./park-faust-data`). The Table is `ledger`: key a user, value
`{charged, reserved, refunded, core_seconds, units, offset}`. Its web server is off.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import faust

from park.events.kafka import KafkaEventLog, KafkaSettings, create_topic
from park.events.schema import BudgetSet, Event, JobSubmitted, event_from_json
from park.projections.state import ParkState

TOTALS = ("charged", "reserved", "refunded", "core_seconds", "units")


def user_of(state: ParkState, event: Event) -> str | None:
    """The user whose ledger an event can change (after it is folded)."""
    if isinstance(event, JobSubmitted | BudgetSet):
        return event.user
    job_id = getattr(event, "job_id", None)
    job = state.jobs.get(job_id) if job_id is not None else None
    return job.user if job is not None else None


def user_totals(state: ParkState, user: str) -> dict[str, Any]:
    """A user's ledger summed over priorities, as the core's `GET /v1/ledger` sums it."""
    rows = [entry for (who, _), entry in state.ledger.items() if who == user]
    totals: dict[str, Any] = {name: sum(getattr(e, name) for e in rows) for name in TOTALS}
    totals["offset"] = state.offset
    return totals


def create_app(
    log_url: str, *, app_id: str | None = None, datadir: str | None = None
) -> tuple[faust.App, ParkState]:
    """The app, and the state its agent folds (for inspection in the same process)."""
    settings = KafkaSettings.from_url(log_url)
    app = faust.App(
        app_id or f"park-ledger-{settings.topic}",
        broker=";".join(f"kafka://{b}" for b in settings.bootstrap.split(",")),
        store="memory://",
        datadir=datadir or "park-faust-data",
        web_enabled=False,
        topic_partitions=1,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=settings.rebalance_timeout_ms / 1000,
    )
    events = app.topic(settings.topic, value_serializer="raw", partitions=1)
    ledger = app.Table("ledger", default=dict, partitions=1)
    state = ParkState()
    log = KafkaEventLog(settings, create=False)

    async def fold_gap(until: int) -> None:
        while state.offset < until:
            batch = await log.read(after=state.offset, limit=min(10_000, until - state.offset))
            if not batch:
                return
            for rec in batch:
                if rec.offset <= until:
                    state.apply(rec.offset, rec.event)
                    _record(rec.event)

    def _record(event: Event) -> None:
        state.outbox.take()  # archived jobs: this app keeps no archive
        user = user_of(state, event)
        if user is not None:
            ledger[user] = user_totals(state, user)

    @app.agent(events)
    async def fold_ledger(stream: Any) -> None:
        async for message in stream.events():
            offset = message.message.offset + 1
            if offset <= state.offset:
                continue  # folded already (redelivered)
            if offset > state.offset + 1:
                await fold_gap(offset - 1)
            event = event_from_json(message.value)
            state.apply(offset, event)
            _record(event)

    return app, state


def create_table_topic(log_url: str, app: faust.App) -> None:
    """The Table's changelog must have the source topic's one partition; a broker that
    auto-creates topics (Tansu: with 4) could otherwise create it first."""
    settings = KafkaSettings.from_url(log_url)
    asyncio.run(create_topic(settings, f"{app.conf.id}-ledger-changelog"))


LOG_URL = os.environ.get("PARK_LOG", "kafka://localhost:9092")
app, _ = create_app(
    LOG_URL,
    app_id=os.environ.get("PARK_FAUST_APP_ID"),
    datadir=os.environ.get("PARK_FAUST_DATA"),
)

if __name__ == "__main__":
    create_table_topic(LOG_URL, app)
    app.main()
