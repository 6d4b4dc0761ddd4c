"""Counters and histograms for `/metrics` that the projections cannot give at scrape time:
what happened while this process ran (events it folded, grants, completions, failures,
lease expiries), how long units waited for a grant and ran, how long HTTP requests took,
and the standard process metrics (CPU, memory, open files, GC)."""

from __future__ import annotations

import itertools
import math
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import HistogramMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from park.events.schema import (
    Event,
    UnitCompleted,
    UnitFailed,
    UnitGranted,
    UnitLeaseExpired,
    UnitsPlanned,
)

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
KEEP_QUEUED = 200_000  # units remembered for their wait; beyond, the oldest are forgotten


class Tally:
    """A histogram for what the fold sees, observed without a lock: plain counts per
    bucket (the event loop is the only writer), exposed as a Prometheus histogram.
    `prometheus_client.Histogram.observe` takes a mutex per bucket and sum, ~2 µs per
    grant and per completion, a few per cent of the server's CPU on short units."""

    def __init__(self, name: str, text: str, buckets: Sequence[float], registry: Any) -> None:
        self.name, self.text = name, text
        self.bounds = [float(b) for b in buckets] + [math.inf]
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket with value <= le
        self.sum += value

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.text)]

    def collect(self) -> list[HistogramMetricFamily]:
        cumulative = itertools.accumulate(list(self.counts))
        les = ["+Inf" if math.isinf(b) else repr(b) for b in self.bounds]  # as Histogram's
        buckets = list(zip(les, cumulative, strict=True))
        return [HistogramMetricFamily(self.name, self.text, buckets=buckets, sum_value=self.sum)]


class EventMetrics:
    """Fed every batch of events this process folds, after its start-up catch-up."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, registry=registry)

        self.appends = counter("park_events", "Events folded by this process (appends to the log)")
        self.grants = counter("park_grants", "Units granted to workers")
        self.completions = counter("park_unit_completions", "Units completed")
        self.failures = counter("park_unit_failures", "Units reported failed")
        self.expiries = counter("park_lease_expiries", "Leases that expired (units requeued)")
        self.lease_latency = Tally(
            "park_lease_latency_seconds",
            "From a unit being queued (planned or requeued) to its grant",
            SECONDS,
            registry,
        )
        self.unit_wall = Tally(
            "park_unit_wall_seconds",
            "Wall time of completed units, as their workers measured it",
            SECONDS,
            registry,
        )
        self._queued_at: OrderedDict[str, float] = OrderedDict()

    def _queued(self, unit_id: str, at: float) -> None:
        self._queued_at[unit_id] = at
        self._queued_at.move_to_end(unit_id)
        while len(self._queued_at) > KEEP_QUEUED:
            self._queued_at.popitem(last=False)

    def __call__(self, records: Sequence[tuple[int, Event]]) -> None:
        """Counted per batch: a counter's `inc` takes a lock each time."""
        self.appends.inc(len(records))
        grants = completions = failures = expiries = 0
        for _, event in records:
            if isinstance(event, UnitGranted):
                grants += 1
                queued = self._queued_at.pop(event.unit_id, None)
                if queued is not None:
                    self.lease_latency.observe(max(0.0, event.at - queued))
            elif isinstance(event, UnitCompleted):
                completions += 1
                self.unit_wall.observe(event.wall_seconds)
            elif isinstance(event, UnitsPlanned):
                for unit in event.units:
                    self._queued(unit.unit_id, event.at)
            elif isinstance(event, UnitFailed):
                failures += 1
                self._queued(event.unit_id, event.at)
            elif isinstance(event, UnitLeaseExpired):
                expiries += 1
                self._queued(event.unit_id, event.at)
        for counter, count in (
            (self.grants, grants),
            (self.completions, completions),
            (self.failures, failures),
            (self.expiries, expiries),
        ):
            if count:
                counter.inc(count)


def process_metrics(registry: CollectorRegistry) -> None:
    """The standard process_*, python_info and python_gc_* series, in this registry."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(GC_COLLECTOR)  # one per process: it hooks the garbage collector


class RequestTimer:
    """ASGI middleware: each HTTP request's latency, by method, route template and status.
    The route template (`/v1/jobs/{job_id}`), not the path, keeps the label set small."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.latency = Histogram(
            "park_http_request_seconds",
            "HTTP request latency (to the end of the response body) by route",
            ["method", "route", "status"],
            buckets=SECONDS,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.latency.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )
