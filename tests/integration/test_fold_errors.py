"""The fold is loud: an event in the log that the fold cannot apply (written by a buggy or
older writer) is counted on /metrics, logged with its offset, shown by `park replay`,
and changes nothing (the unit it names is not completed); the server starts and serves."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.integration.helpers import client
from tests.support import ParkServer, free_port

SLEEP = "park.builtins:sleep"


def test_an_event_the_fold_cannot_apply_is_counted_logged_and_shown(tmp_path: Path) -> None:
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port(), log_dir=tmp_path)
    server.start()
    try:
        http = client(server.url)
        spec = {"function": SLEEP, "inputs": [0]}
        job = http.post("/v1/jobs", json={"kind": "map", "spec": spec}).json()["id"]
        worker = http.post("/v1/workers", json={"name": "w", "cpus": 1}).json()["id"]
        [unit] = http.post(f"/v1/workers/{worker}/lease", json={"max_units": 1}).json()["units"]
        server.stop()

        # a completion whose result the map kind cannot take, appended behind park's back
        bad = {"type": "unit.completed", "v": 1, "at": 1e9, "unit_id": unit["id"],
               "job_id": job, "worker_id": worker, "result": {"not": "a list"},
               "cpu_seconds": 0.0, "charged": 0.0}  # fmt: skip
        db = sqlite3.connect(server.data_dir / "events.sqlite3")
        with db:
            cursor = db.execute(
                "INSERT INTO events(type, at, job_id, body) VALUES (?,?,?,?)",
                ("unit.completed", 1e9, job, json.dumps(bad)),
            )
        offset = cursor.lastrowid
        db.close()

        server.start()
        http = client(server.url)
        metrics = http.get("/metrics").text
        assert "park_fold_errors_total 1.0" in metrics, metrics
        # not completed: still the worker's, or queued again if its lease ran out meanwhile
        units = http.get(f"/v1/jobs/{job}/units").json()["units"]
        assert [(u["id"], u["status"]) for u in units] in (
            [(unit["id"], "leased")],
            [(unit["id"], "queued")],
        )
        assert http.get(f"/v1/jobs/{job}").json()["progress"]["done"] == 0
        log = (tmp_path / f"serve-{server.port}.log").read_text()
        assert f"event {offset} (unit.completed) not applied" in log

        replay = subprocess.run(
            [sys.executable, "-m", "park", "replay", "--verify",
             "--data-dir", str(server.data_dir)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        said = " ".join(replay.stdout.split())
        assert "events the fold could not apply: 1" in said, said
        assert f"offset {offset} (unit.completed)" in said
        assert replay.returncode == 1  # --verify: a left-out event is a failure
    finally:
        server.stop()
