"""Ctrl-C to `park serve --workers 1`, again and again: how many stops hang, how long the
others take. One server at a time; bounded (each Ctrl-C waits `--wait` seconds at most).

Each round starts `park serve --workers 1` in its own session, reads its banner, sleeps a
random 0.3-1.5 s (its worker importing, registering, leasing), then sends SIGINT to its
process group as a terminal does. With `--busy`, two clients register workers back to back
meanwhile, so the Ctrl-C comes as the state changes (the window of the Python 3.11
`asyncio.wait_for` hang). A server still running after `--wait` s counts as a hang and is
killed, with its worker.

    python benchmarks/serve_interrupts.py --ctrl-cs 40
    python benchmarks/serve_interrupts.py --ctrl-cs 30 --busy
    PYTHONPATH=/path/to/old/checkout python benchmarks/serve_interrupts.py  # another version
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import free_port


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def register_back_to_back(url: str, done: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=5.0) as http:
        while not done.is_set():
            try:
                http.post("/v1/workers", json={"name": "busy", "cpus": 1})
            except httpx.HTTPError:
                return


def one_ctrl_c(directory: str, busy: bool, wait: float) -> float | None:
    """Seconds from Ctrl-C to exit, or None if it hung."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "park", "serve", "--workers", "1", "--port", str(port),
         "--data-dir", f"{directory}/data-{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=directory,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for _ in range(3):
        proc.stdout.readline()
    done = threading.Event()
    clients = [
        threading.Thread(target=register_back_to_back, args=(f"http://127.0.0.1:{port}", done))
        for _ in range(2 if busy else 0)
    ]
    for thread in clients:
        thread.start()
    time.sleep(random.uniform(0.3, 1.5))
    workers = children(proc.pid)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=wait)
        took: float | None = time.monotonic() - started
    except subprocess.TimeoutExpired:
        took = None
        workers += children(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done.set()
    for thread in clients:
        thread.join()
    for worker in workers:  # each leads its own process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker, signal.SIGKILL)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ctrl-cs", type=int, default=30)
    parser.add_argument("--busy", action="store_true", help="clients change the state meanwhile")
    parser.add_argument("--wait", type=float, default=15.0, help="a hang after this many s")
    args = parser.parse_args()
    times: list[float] = []
    hangs = 0
    with tempfile.TemporaryDirectory(prefix="park-interrupts-") as directory:
        for n in range(args.ctrl_cs):
            took = one_ctrl_c(directory, args.busy, args.wait)
            if took is None:
                hangs += 1
            else:
                times.append(took)
            print(f"{n + 1}: {'HANG' if took is None else f'{took:.2f} s'}", flush=True)
    print(f"\n{'busy' if args.busy else 'idle'} server, {args.ctrl_cs} Ctrl-Cs: {hangs} hung")
    if times:
        print(f"exit after Ctrl-C: median {statistics.median(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
