"""Prometheus metrics, read from the projections at scrape time (no counters to drift)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from park.domain import JobStatus

if TYPE_CHECKING:
    from park.service.engine import ParkService


class ParkCollector(Collector):
    def __init__(self, service: ParkService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        state = self.service.state
        jobs = GaugeMetricFamily("park_jobs", "Jobs by status", labels=["status"])
        counts = Counter(job.status for job in state.jobs.values())
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily("park_units_leased", "Units under lease", value=len(state.leased))
        yield GaugeMetricFamily(
            "park_units_queued",
            "Units waiting for a worker",
            value=sum(len(state.jobs[j].queue) for j in state.runnable),
        )
        yield GaugeMetricFamily(
            "park_workers_active",
            "Registered workers that have not left",
            value=sum(1 for w in state.workers.values() if w.active),
        )
        yield GaugeMetricFamily(
            "park_units_in_memory",
            "Units in the unit table (in flight, and the latest completed of each job)",
            value=len(state.units),
        )
        yield GaugeMetricFamily("park_log_offset", "Offset folded", value=state.offset)
        book = state.notices
        sent = CounterMetricFamily(
            "park_notifications_sent", "Notifications delivered", labels=["channel"]
        )
        failed = CounterMetricFamily(
            "park_notification_failures",
            "Notification attempts that failed (each is retried with back-off)",
            labels=["channel"],
        )
        for channel in ("email", "webhook"):
            sent.add_metric([channel], book.sent_total[channel])
            failed.add_metric([channel], book.failed_total[channel])
        yield sent
        yield failed
        yield GaugeMetricFamily(
            "park_notifications_pending",
            "Notifications owed and not yet delivered (digests count per job)",
            value=book.pending(),
        )
        yield CounterMetricFamily(
            "park_fold_errors",
            "Events the fold could not apply (each logged with its offset)",
            value=state.fold_errors,
        )
