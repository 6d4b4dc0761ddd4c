"""`park.remote` contexts nest, and leaving one (even by an exception) restores the last."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import park
from tests.support import ParkServer, free_port


def test_nested_remotes_restore_the_previous_service_even_on_error() -> None:
    assert park.default_service() is park.local_service
    with park.remote("http://127.0.0.1:9") as outer:
        assert park.default_service() is outer
        with (
            pytest.raises(RuntimeError, match="inside"),
            park.remote("http://127.0.0.1:10", token="t") as inner,
        ):
            assert park.default_service() is inner
            assert inner is not outer
            raise RuntimeError("inside")
        assert park.default_service() is outer
        with park.remote("http://127.0.0.1:11") as second:
            assert park.default_service() is second
        assert park.default_service() is outer
    assert park.default_service() is park.local_service
    assert not park.local_service.running  # looking at it did not start it


def test_an_unreachable_remote_raises_service_unavailable() -> None:
    with park.remote(f"http://127.0.0.1:{free_port()}"), pytest.raises(park.ServiceUnavailable):
        park.jobs()


def run_script(code: str, url: str) -> str:
    script = "import park, sys\nwith park.remote(sys.argv[1]):\n" + textwrap.indent(
        textwrap.dedent(code), "    "
    )
    done = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_job_is_picked_up_by_id_from_a_new_process_while_it_runs(tmp_path: Path) -> None:
    server = ParkServer(data_dir=tmp_path / "data", port=free_port(), workers=2).start()
    try:
        job_id = run_script(
            """
            job = park.submit("map", {"function": "park.builtins:sleep",
                                      "inputs": [1.0] * 8, "chunk": 1},
                              tags={"name": "handover"})
            print(job.id)
            """,
            server.url,
        )
        # The submitting process is gone; a new one finds the job by id and by tag.
        status = run_script(f"print(park.job({job_id!r}).status())", server.url)
        assert status in ("pending", "running")
        found = run_script(
            """
            [job] = park.jobs(tags={"name": "handover"})
            print(job.id, job.wait(timeout=60, progress=False))
            """,
            server.url,
        )
        assert found == f"{job_id} {[1.0] * 8}"
    finally:
        server.stop()
