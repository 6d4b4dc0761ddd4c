"""A real `park serve` whose log cannot take writes: a full disk (a small tmpfs of its
own), a log file locked by another writer, or a file system the kernel turned read-only
(an ext4 image on a loop device) is a 503 with Retry-After that records nothing, and
reads keep working. The service takes writes again by itself once it can; a read-only
ext4 takes them only once repaired and mounted again, so there the server is restarted.
Mounting needs root: those tests skip otherwise (CI runs them as root)."""

from __future__ import annotations

import errno
import os
import signal
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


NEEDS_ROOT = "mounts a file system of its own, which needs root (CI runs the tests as root)"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A 64 MB ext4 image mounted on a loop device, made read-only by the kernel when it
    sees an error (`errors=remount-ro`, as on a failing disk)."""
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    image, mount = tmp_path / "disk.img", tmp_path / "disk"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(mount)], check=True)
    try:
        yield image, mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def turn_read_only(mount: Path) -> None:
    """What a disk error does: ext4 records the error and turns its file system
    read-only; every later write gets EROFS (kernel sysfs `trigger_fs_error`)."""
    device = subprocess.run(
        ["findmnt", "-no", "SOURCE", str(mount)], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.sync()  # what the kernel had written back when the error struck (see the test)
    trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
    trigger.write_text("park test: the disk turns read-only\n")
    with pytest.raises(OSError) as refused:
        (mount / "probe").write_text("x")
    assert refused.value.errno == errno.EROFS


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


@pytest.mark.slow
def test_a_read_only_file_system_is_a_503_and_nothing_is_half_written(
    ext4_disk: tuple[Path, Path],
) -> None:
    image, mount = ext4_disk
    server = ParkServer(
        data_dir=mount / "park-data", port=free_port(), log_dir=mount.parent
    ).start()
    try:
        http = client(server.url)
        accepted = [submit(http).json()["id"] for _ in range(3)]
        wait_for(lambda: all(get_job(http, j)["progress"]["total"] == 1 for j in accepted))
        # With synchronous=NORMAL (the default) a commit is not fsync'd: what the kernel
        # had not yet written back when the disk failed is lost with it (`--durable`
        # fsyncs each commit); the sync in turn_read_only stands for that write-back.
        turn_read_only(mount)
        before = offset(http)
        for _ in range(3):
            assert refused_for_now(submit(http))
        assert refused_for_now(http.post(f"/v1/jobs/{accepted[0]}/cancel"))
        worker = http.post("/v1/workers", json={"name": "w", "cpus": 1})
        assert refused_for_now(worker)
        assert offset(http) == before, "a refused request recorded something"
        listed = http.get("/v1/jobs").json()["jobs"]  # reads keep working
        assert {j["id"] for j in listed} == set(accepted)
        assert all(j["status"] == "pending" for j in listed)
        assert http.get("/healthz").status_code == 200
    finally:
        server.stop()
    # It stops cleanly, without its snapshot (a cache: the next start folds the log).
    assert server.proc is not None and server.proc.returncode in (0, -signal.SIGTERM)
    said = (mount.parent / f"serve-{server.port}.log").read_text()
    assert "no snapshot at shutdown" in said and "Traceback" not in said, said[-3000:]

    # The administrator's repair: unmount, check, mount again; then the server starts
    # on it with everything it accepted, and takes writes again.
    subprocess.run(["umount", str(mount)], check=True)
    checked = subprocess.run(["e2fsck", "-f", "-y", str(image)], capture_output=True, text=True)
    assert checked.returncode in (0, 1), checked.stdout + checked.stderr  # 1: fixed
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    server.start()
    http = client(server.url)
    assert {j["id"] for j in http.get("/v1/jobs").json()["jobs"]} == set(accepted)
    assert submit(http).status_code == 201
    server.stop()
    replay = subprocess.run(
        [sys.executable, "-m", "park", "replay", "--verify", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "0 differ" in replay.stdout, replay.stdout
