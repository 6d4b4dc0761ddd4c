"""One data directory, one server: a second `park serve` on the same directory refuses to
start, naming the process that serves it; after a `kill -9` of that one it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import ParkServer, free_port


def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    first = ParkServer(data_dir=tmp_path / "park-data", port=free_port()).start()
    try:
        assert first.proc is not None
        second = subprocess.run(
            [sys.executable, "-m", "park", "serve", "--port", str(free_port()),
             "--data-dir", str(first.data_dir), "--workers", "0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        said = " ".join((second.stdout + second.stderr).split())
        assert second.returncode == 2, said
        assert f"in use by process {first.proc.pid} (park serve on 127.0.0.1:{first.port})" in said
        assert httpx.get(f"{first.url}/healthz").status_code == 200

        first.kill()  # the kernel drops the lock of a dead process
        first.start()
        assert httpx.get(f"{first.url}/healthz").status_code == 200
    finally:
        first.stop()
