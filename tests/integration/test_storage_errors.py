"""A real `park serve` whose log cannot take writes: a full disk (a small tmpfs of its
own; the tests run as root) or a log file locked by another writer is a 503 with
Retry-After that records nothing, reads keep working, and the service takes writes again
by itself once it can."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import client, get_job
from tests.support import ParkServer, free_port, wait_for

SLEEP = "park.builtins:sleep"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write until the file system is full (the file stays, at the size that fitted)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as err:
                    assert err.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


def submit(http: httpx.Client, inputs: int = 1) -> httpx.Response:
    spec = {"function": SLEEP, "inputs": [0] * inputs, "chunk": max(1, inputs)}
    return http.post("/v1/jobs", json={"kind": "map", "spec": spec})


def offset(http: httpx.Client) -> int:
    return int(http.get("/healthz").json()["offset"])


def refused_for_now(response: httpx.Response) -> bool:
    if response.status_code != 503:
        return False
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["code"] == "unavailable", response.text
    return True


@pytest.mark.slow
def test_a_full_disk_is_a_503_and_the_service_resumes_by_itself(small_disk: Path) -> None:
    server = ParkServer(
        data_dir=small_disk / "park-data", port=free_port(), log_dir=small_disk.parent
    ).start()
    try:
        http = client(server.url)
        accepted = [submit(http).json()["id"]]
        fill(small_disk / "filler")
        refusals = 0
        for _ in range(60):  # what the log's pages still hold goes first
            before = offset(http)
            response = submit(http, inputs=20_000)
            if response.status_code == 201:
                accepted.append(response.json()["id"])
                continue
            assert refused_for_now(response), response.text
            assert offset(http) == before, "a refused request recorded something"
            refusals += 1
            if refusals == 3:
                break
        assert refusals == 3, "the disk never filled"
        listed = http.get("/v1/jobs").json()["jobs"]
        assert {j["id"] for j in listed} == set(accepted)

        (small_disk / "filler").unlink()
        resumed = wait_for(lambda: (r := submit(http)).status_code == 201 and r, timeout=30)
        accepted.append(resumed.json()["id"])
        # jobs accepted while the disk filled are planned once it has room again
        wait_for(
            lambda: all(get_job(http, j)["progress"]["total"] == 1 for j in accepted), timeout=30
        )

        server.kill()
        server.start()
        http = client(server.url)
        assert {j["id"] for j in http.get("/v1/jobs").json()["jobs"]} == set(accepted)
        replay = subprocess.run(
            [sys.executable, "-m", "park", "replay", "--verify",
             "--data-dir", str(server.data_dir)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stdout + replay.stderr
    finally:
        server.stop()


def test_a_log_locked_by_another_process_is_a_503_until_it_is_released(tmp_path: Path) -> None:
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port()).start()
    try:
        http = client(server.url)
        assert submit(http).status_code == 201
        other = sqlite3.connect(server.data_dir / "events.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a writer outside park holds the file
        before = offset(http)
        assert refused_for_now(submit(http))
        assert offset(http) == before
        assert http.get("/v1/jobs").status_code == 200
        other.execute("ROLLBACK")
        other.close()
        assert submit(http).status_code == 201
    finally:
        server.stop()
