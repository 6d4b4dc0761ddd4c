"""A newcomer's mistakes on the command line: each is one line naming what to fix, with a
non-zero exit, never a traceback. The server-side ones run against a real `park serve`."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from tests.support import ParkServer, free_port


def park(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60.0):
    return subprocess.run(
        [sys.executable, "-m", "park", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0, result
    text = result.stderr.strip()
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert len(text.splitlines()) == 1, text
    for word in words:
        assert word in text, text
    return text


def read_until(stream: IO[str], word: str, timeout: float) -> list[str]:
    """Lines of `stream` up to the first holding `word`; fails after `timeout`."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            break
        if word in seen[-1]:
            return seen
    raise AssertionError(f"no line with {word!r} within {timeout} s: {seen}")


MISTAKES = [
    (["submit", "map", "{not json"], ["spec", "not valid JSON", "line 1"]),
    (["submit", "fit", "@missing.json"], ["missing.json", "no such file"]),
    (["submit", "fit", "{}", "--data", "nofile.csv"], ["--data", "nofile.csv", "no such file"]),
    (["submit", "map", "[1, 2]"], ["spec", "JSON object"]),
    (["serve", "--port", "eighty"], ["--port", "PARK_PORT", "integer"]),
    (["serve", "--config", "nope.toml"], ["nope.toml", "not found"]),
    (["worker", "--cpus", "0"], ["--cpus", "greater than or equal to 1"]),
    (["scheduler"], ["--log", "kafka://"]),
]


@pytest.mark.parametrize(("args", "words"), MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_local_mistakes_are_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    one_line_error(park(*args, "--server", "http://127.0.0.1:9", cwd=tmp_path)
                   if args[0] == "submit" else park(*args, cwd=tmp_path), *words)  # fmt: skip


def test_env_and_config_mistakes_name_the_setting(tmp_path: Path) -> None:
    result = park("serve", cwd=tmp_path, env={"PARK_WORKERS": "many"})
    one_line_error(result, "PARK_WORKERS", "integer")
    config = tmp_path / "park.toml"
    config.write_text("[serve]\nprot = 1\n")
    one_line_error(park("serve", "--config", str(config), cwd=tmp_path), "prot", "unknown")


def test_help_shows_defaults_and_environment(tmp_path: Path) -> None:
    text = park("serve", "--help", cwd=tmp_path).stdout
    for expected in ("--port", "default: 8080", "PARK_PORT", "--log-level", "--access-log",
                     "PARK_CONFIG", "--data-dir"):  # fmt: skip
        assert expected in text, expected
    text = park("worker", "--help", cwd=tmp_path).stdout
    assert "PARK_SERVER" in text and "own-only" in text and "PARK_TOKEN" in text


def test_server_refusals_show_the_reason(park_server: ParkServer, tmp_path: Path) -> None:
    server = ["--server", park_server.url]
    result = park("submit", "fit", '{"model": "nonsense"}', *server, cwd=tmp_path)
    one_line_error(result, "park submit:", "422")
    assert "spec" in result.stderr
    result = park("worker", "--policy", "job", *server, cwd=tmp_path)
    one_line_error(result, "park worker:", "job", "422")
    result = park("show", "no-such-job", *server, cwd=tmp_path)
    one_line_error(result, "no-such-job", "404")


def test_worker_at_a_dead_server_says_so_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "park", "worker", "--server", url, "--cpus", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        seen = read_until(proc.stderr, "unreachable", timeout=60)
        assert url in seen[-1], seen
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        out, err = proc.communicate()
        assert "Traceback" not in "".join(seen) + out + err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_banner_and_quiet_interrupt(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "park", "serve", "--port", str(port), "--workers", "1",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]
        text = "".join(banner)
        assert f"http://127.0.0.1:{port}" in text, text
        assert str(tmp_path / "data") in text and "1 local worker" in text, text
        assert "tokens off" in text, text
        time.sleep(1.0)  # the local worker is up and leasing
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole group
        proc.wait(timeout=30)
        rest = proc.stdout.read()
        assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
        assert len(rest.strip().splitlines()) <= 1, rest
        assert proc.returncode in (0, 130), proc.returncode  # 130: stopped by Ctrl-C
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
