"""`/metrics` of a real server: the counters and histograms move when work runs, and the
process metrics are there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import client, submit_map, wait_final
from tests.support import ParkServer, free_port, wait_for


@pytest.fixture
def short_lease_server(tmp_path: Path) -> Iterator[ParkServer]:
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port(), lease_seconds=1.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_series_move_when_work_runs(short_lease_server: ParkServer, start_worker) -> None:
    http = client(short_lease_server.url)
    before = scrape(http)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert total(before, name) > 0, name
    assert total(before, "park_grants_total") == 0

    # A worker that leases one unit and vanishes: its lease expires.
    job = submit_map(http, "park.builtins:sleep", [0.0, 0.0, 0.0])
    worker = http.post("/v1/workers", json={"name": "vanishing", "cpus": 1}).json()["id"]
    leased = http.post(f"/v1/workers/{worker}/lease", json={"max_units": 1}).json()["units"]
    assert len(leased) == 1
    wait_for(lambda: total(scrape(http), "park_lease_expiries_total") >= 1, timeout=30)

    bad = {"function": "park.builtins:sleep", "inputs": ["not a number"]}
    failing = http.post("/v1/jobs", json={"kind": "map", "spec": bad, "max_attempts": 1}).json()
    # (its one attempt raises on the worker: the unit fails, and the job)
    start_worker(short_lease_server)
    assert wait_final(http, job["id"], timeout=60)["status"] == "complete"
    wait_final(http, failing["id"], timeout=60)
    after = scrape(http)

    assert total(after, "park_grants_total") >= 5  # 3 + the expired one again + the failing
    assert total(after, "park_unit_completions_total") >= 3
    assert total(after, "park_unit_failures_total") >= 1
    assert total(after, "park_events_total") > total(before, "park_events_total") + 10
    assert total(after, "park_lease_latency_seconds_count") >= 5
    assert total(after, "park_unit_wall_seconds_count") >= 3
    lease_route = [
        v
        for (n, labels), v in after.items()
        if n == "park_http_request_seconds_count"
        and ("route", "/v1/workers/{worker_id}/lease") in labels
    ]
    assert sum(lease_route) >= 2
    submitted = [
        v
        for (n, labels), v in after.items()
        if n == "park_http_request_seconds_count"
        and ("route", "/v1/jobs") in labels
        and ("method", "POST") in labels
    ]
    assert sum(submitted) == 2


def test_a_tally_exposes_what_a_prometheus_histogram_would() -> None:
    """The fold's histograms count without a lock per observation (park.api.telemetry.Tally);
    a scraper sees the same buckets, count and sum as from prometheus_client's Histogram."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from park.api.telemetry import SECONDS, Tally

    stock, tallied = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("park_x_seconds", "x", buckets=SECONDS, registry=stock)
    tally = Tally("park_x_seconds", "x", SECONDS, tallied)
    for value in (0.0, 0.005, 0.0051, 0.3, 1, 3600, 5000.5):
        histogram.observe(value)
        tally.observe(value)
    expected = [
        line for line in generate_latest(stock).decode().splitlines() if "_created" not in line
    ]
    assert generate_latest(tallied).decode().splitlines() == expected
