"""A real single-node Slurm (with slurm-wlm-torque's qsub/qstat/qdel), started once per
session by .ci/slurm-up (installed from Debian packages by .ci/run). Without it these
tests fail; they never skip."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ParkServer, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def slurm() -> None:
    done = subprocess.run(
        [str(ROOT / ".ci" / "slurm-up")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"Slurm did not start: {done.stderr}{done.stdout}"


def in_queue(batch_id: str) -> bool:
    """Whether Slurm still lists the job as pending, running or completing."""
    out = subprocess.run(
        ["squeue", "-h", "-j", batch_id, "-o", "%T"], capture_output=True, text=True, timeout=10
    ).stdout
    return any(s in out for s in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING"))


@pytest.fixture
def pilot_env(tmp_path: Path, slurm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """What pilots inherit from whoever submits them: tests.batch.units on their allow
    list and importable."""
    monkeypatch.setenv("PARK_ALLOWED_FUNCTIONS", "tests.batch.units:*")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def pilot_server(tmp_path: Path, pilot_env: None) -> Iterator[ParkServer]:
    """`park serve` with no local workers, able to submit pilots."""
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port())
    try:
        server.start(timeout=90)  # a loaded machine starts Python slowly
        yield server
    finally:
        server.stop()
