"""One suite, run against the local service and against `park serve` through
`park.remote`, with identical assertions."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import park
import park.client.api
from tests.support import ParkServer, free_port

SLEEP = "park.builtins:sleep"


@pytest.fixture(params=["local", "remote"])
def service(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[park.RemoteService]:
    if request.param == "local":
        local = park.LocalService(data_dir=tmp_path / "local", workers=2)
        monkeypatch.setattr(park.client.api, "local_service", local)
        try:
            yield park.default_service()
        finally:
            local.shutdown()
    else:
        server = ParkServer(data_dir=tmp_path / "remote", port=free_port(), workers=2)
        server.start()
        try:
            with park.remote(server.url) as remote:
                yield remote
        finally:
            server.stop()


def test_submit_wait_result(service: park.RemoteService) -> None:
    job = park.submit("map", {"function": SLEEP, "inputs": [0, 0.01, 0.02], "chunk": 2})
    assert job.service is service
    assert job.wait(timeout=60, progress=False) == [0, 0.01, 0.02]
    assert job.status() == "complete"
    assert job.progress()["done"] == job.progress()["total"] == 2
    assert job.result() == [0, 0.01, 0.02]


def test_jobs_are_tagged_and_found_again_by_id_and_tag(service: park.RemoteService) -> None:
    name = f"scan-{uuid.uuid4().hex[:6]}"
    job = park.submit("map", {"function": SLEEP, "inputs": [0]}, tags={"name": name})
    tags = job.info()["tags"]
    assert tags["user"] == park.usertag()
    assert tags["service"] == service.name
    assert tags["name"] == name
    assert "submitted" in tags
    assert park.job(job.id) == job
    assert park.jobs(tags={"name": name}) == [job]
    job.wait(timeout=60, progress=False)
    assert job in park.jobs(status="complete")
    assert job not in park.jobs(status=["pending", "running"])


def test_a_failed_job_raises_job_failed_with_the_reason(service: park.RemoteService) -> None:
    job = park.submit("map", {"function": SLEEP, "inputs": ["not a number"]})
    with pytest.raises(park.JobFailed, match="could not convert string to float"):
        job.wait(timeout=60, progress=False)
    assert job.status() == "failed"


def test_a_cancelled_job_raises_job_cancelled(service: park.RemoteService) -> None:
    job = park.submit("map", {"function": SLEEP, "inputs": [30, 30, 30]})
    job.cancel()
    assert job.status() == "cancelled"
    with pytest.raises(park.JobCancelled):
        job.result()


def test_bad_requests_carry_the_servers_message(service: park.RemoteService) -> None:
    with pytest.raises(park.BadRequest, match="kind: unknown job kind 'teleport'") as err:
        park.submit("teleport", {})
    assert err.value.status == 422
    with pytest.raises(park.BadRequest, match="job_id"):
        park.job("no-such-job")


def test_priority_can_be_changed(service: park.RemoteService) -> None:
    job = park.submit("map", {"function": SLEEP, "inputs": [30]}, priority="low")
    assert job.info()["priority"] == "low"
    job.set_priority("high")
    assert job.info()["priority"] == "high"
    job.cancel()


def test_explain_says_why_a_job_waits(service: park.RemoteService) -> None:
    job = park.submit("map", {"function": SLEEP, "inputs": [30, 30, 30, 30, 30]})
    explained = job.explain()
    assert explained["id"] == job.id
    assert explained["reasons"], explained
    assert explained["status"] in ("pending", "running")
    job.cancel()
    assert job.explain()["reasons"] == ["the job is cancelled; it waits for nothing"]


def test_after_calls_back_once_the_job_finishes(service: park.RemoteService) -> None:
    finished = threading.Event()
    seen: list[str] = []
    job = park.submit("map", {"function": SLEEP, "inputs": [0.05]})
    job.after(lambda j: (seen.append(j.status()), finished.set()))
    assert finished.wait(60)
    assert seen == ["complete"]
