"""The docs as tests: every `sh`/`bash` and `python` block in README.md and docs/*.md runs,
as written, against a real `park serve` with a local worker, and must succeed.

A block that cannot run here says so just above its fence, with a reason the reader sees
in the source:

    <!-- docs-test: skip (needs a Kafka broker; tests/integration/test_kafka_cluster.py) -->

What the runner changes, and only this: `park` commands reach the test server through
`PARK_SERVER`, a URL `http://127.0.0.1:80NN` in a block becomes the test server's (other
servers may hold port 8080 here), and `JOB_ID` is a job the test submitted. Each block runs
in a fresh directory holding `examples/` and the server's `park-data/`, so relative paths
work as they do in a checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import ParkServer, free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*(.*?)\s*-->\s*$")
RUN = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python"}
LOCAL_URL = re.compile(r"http://(127\.0\.0\.1|localhost):80\d\d")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    code: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            language = RUN.get(match.group(1))
            if language is None:
                continue
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = SKIP.search(before)
            line = text.count("\n", 0, match.start()) + 1
            reason = skip.group(1) if skip else None
            found.append(Block(path, line, language, match.group(2), reason))
    return found


BLOCKS = blocks()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ParkServer, str]]:
    """A server with one local worker, and a finished job for JOB_ID."""
    home = tmp_path_factory.mktemp("docs")
    server = ParkServer(data_dir=home / "park-data", port=free_port(), workers=1)
    server.start(timeout=60)
    try:
        spec = {"function": "park.builtins:sleep", "inputs": [0.1], "chunk": 1}
        job = httpx.post(f"{server.url}/v1/jobs", json={"kind": "map", "spec": spec}).json()
        yield server, job["id"]
    finally:
        server.stop()


def test_every_block_runs_or_says_why_not() -> None:
    assert len(BLOCKS) >= 10
    for block in BLOCKS:
        if block.skip_reason is not None:
            assert len(block.skip_reason) > 10, f"{block.id}: say why it is not run"
    assert sum(b.skip_reason is None for b in BLOCKS) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.skip_reason is None], ids=lambda b: b.id)
def test_block_runs(block: Block, served: tuple[ParkServer, str], tmp_path: Path) -> None:
    server, job_id = served
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "park-data").symlink_to(server.data_dir)
    code = LOCAL_URL.sub(server.url, block.code).replace("JOB_ID", job_id)
    env = {
        **os.environ,
        "PARK_SERVER": server.url,
        "HOME": str(tmp_path),  # the local service keeps its log under ~/.cache/park
        "COLUMNS": "120",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = ["bash", "-e", "-o", "pipefail", "-c", code]
    if block.language == "python":
        command = [sys.executable, "-c", code]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (
        f"{block.id}:\n{code}\n--- out\n{done.stdout}\n--- err\n{done.stderr}"
    )
    assert "Traceback" not in done.stderr, done.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    command = FENCE.search(section)
    assert command is not None
    line = command.group(2).strip()
    assert "\n" not in line and "pytest" in line and "system-deps" in line
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert line in ci, f".ci/run does not run {line!r}"
