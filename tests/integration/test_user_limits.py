"""Fairness under abuse: a user at the server's per-user limit of active jobs or queued
units gets a 429 saying which, and appends nothing; other users are not affected."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.helpers import client
from tests.support import ParkServer, free_port

SLEEP = "park.builtins:sleep"


def submit(http: httpx.Client, inputs: int = 1) -> httpx.Response:
    spec = {"function": SLEEP, "inputs": [0] * inputs, "chunk": 1}
    return http.post("/v1/jobs", json={"kind": "map", "spec": spec})


def offset(http: httpx.Client) -> int:
    return int(http.get("/healthz").json()["offset"])


def test_per_user_limits_are_a_429_for_that_user_only(tmp_path: Path) -> None:
    server = ParkServer(
        data_dir=tmp_path / "park-data", port=free_port(),
        extra_args=["--max-active-jobs", "2", "--max-queued-units", "5"],
    ).start()  # fmt: skip
    try:
        ann, bob, cat = (client(server.url, user) for user in ("ann", "bob", "cat"))
        first = submit(ann).json()["id"]
        assert submit(ann).status_code == 201
        before = offset(ann)
        refused = submit(ann)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) > 0
        message = refused.json()["error"]["message"]
        assert message.startswith("user 'ann' has 2 active jobs"), message
        assert offset(ann) == before
        assert submit(bob).status_code == 201  # others are not held back
        assert ann.post(f"/v1/jobs/{first}/cancel").status_code == 200
        assert submit(ann).status_code == 201  # room again once one finished

        assert submit(cat, inputs=5).status_code == 201
        refused = submit(cat)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["message"].startswith("user 'cat' has 5 units queued")
    finally:
        server.stop()
