"""`fit` jobs through the real thing: `park serve`, `park worker`, HTTP.

NIST datasets from Start 1 reach the certified values through the server and its workers;
a hostile model is refused with a 422 naming the field; progress shows the best
chi-squared while a fit runs; and a `de` fit whose server is killed with -9 mid-run ends,
after a restart, with exactly the result of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.kinds.nist import NIST_DIR, NistProblem, digits, load
from tests.support import ParkServer, wait_for

pytestmark = [
    pytest.mark.slow,
]

FINAL = ("complete", "failed", "cancelled")


def submit(http: httpx.Client, spec: dict[str, Any]) -> str:
    response = http.post("/v1/jobs", json={"kind": "fit", "spec": spec})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/jobs/{job_id}")
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def result_of(http: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    wait_for(lambda: job(http, job_id)["status"] in FINAL, timeout=timeout, interval=0.2)
    body = http.get(f"/v1/jobs/{job_id}/result").json()
    assert body["status"] == "complete", body
    return body["result"]  # type: ignore[no-any-return]


def check_nist(problem: NistProblem, result: dict[str, Any]) -> None:
    values = [result["parameters"][n]["value"] for n in problem.names]
    errors = [result["parameters"][n]["stderr"] for n in problem.names]
    assert min(digits(v, c) for v, c in zip(values, problem.certified, strict=True)) >= 6
    assert min(digits(e, c) for e, c in zip(errors, problem.certified_sd, strict=True)) >= 3


def test_nist_fits_through_server_and_workers(park_server: ParkServer, start_worker: Any) -> None:
    start_worker(park_server, 2)
    runs = [
        ("Misra1a", "multistart", {"starts": 8, "seed": 1}),
        ("Thurber", "multistart", {"starts": 4, "seed": 1}),
        ("Eckerle4", "de", {"seed": 1}),
        ("Rat42", "de", {"seed": 2}),
    ]
    with httpx.Client(base_url=park_server.url, timeout=10.0) as http:
        jobs = []
        for name, method, options in runs:
            problem = load(NIST_DIR / f"{name}.dat")
            jobs.append((problem, submit(http, problem.spec(method, options))))
        for problem, job_id in jobs:
            result = result_of(http, job_id)
            check_nist(problem, result)
            assert result["covariance"]["names"] == problem.names


def test_a_hostile_model_is_refused_with_422(park_server: ParkServer) -> None:
    spec = {
        "model": "__import__('os').system('touch /tmp/pwned')",
        "data": {"x": [1, 2, 3], "y": [1, 2, 3]},
        "parameters": {"a": 1.0},
    }
    with httpx.Client(base_url=park_server.url, timeout=10.0) as http:
        response = http.post("/v1/jobs", json={"kind": "fit", "spec": spec})
        assert response.status_code == 422, response.text
        assert "spec.model" in response.text


def de_spec(seed: int) -> dict[str, Any]:
    """A DE fit long enough to be interrupted: no early convergence, 40 generations."""
    problem = load(NIST_DIR / "Misra1a.dat")
    options = {"seed": seed, "popsize": 16, "generations": 40, "tol": 0.0, "per_unit": 4}
    return problem.spec("de", options)


def test_progress_shows_the_best_chisq_while_running(
    park_server: ParkServer, start_worker: Any
) -> None:
    with httpx.Client(base_url=park_server.url, timeout=10.0) as http:
        job_id = submit(http, de_spec(seed=5))
        start_worker(park_server, 1)
        seen = wait_for(
            lambda: (
                (p := job(http, job_id)["progress"]).get("best_chisq") is not None
                and p.get("generation", 0) >= 2
                and p
            ),
            timeout=60,
            interval=0.02,
        )
        assert seen["stage"] == "evolve" and seen["best_chisq"] > 0
        result = result_of(http, job_id)
        assert result["chisq"] <= seen["best_chisq"]


def test_kill_9_during_de_then_restart_gives_the_uninterrupted_result(
    park_server: ParkServer, start_worker: Any
) -> None:
    spec = de_spec(seed=11)
    with httpx.Client(base_url=park_server.url, timeout=10.0) as http:
        crashed = submit(http, spec)
        start_worker(park_server, 1)
        before = wait_for(
            lambda: (j := job(http, crashed))["progress"].get("generation", -1) >= 8 and j,
            timeout=60,
            interval=0.02,
        )
    park_server.kill()
    assert before["status"] == "running" and before["progress"]["generation"] < 40
    time.sleep(0.5)
    park_server.start()
    with httpx.Client(base_url=park_server.url, timeout=10.0) as http:
        after = result_of(http, crashed)
        uninterrupted = result_of(http, submit(http, spec))
    assert after == uninterrupted
    assert after["generations"] == 40


def test_cli_submits_a_fit_with_a_data_file(
    park_server: ParkServer, start_worker: Any, tmp_path: Any
) -> None:
    """`park submit fit SPEC --data FILE`: the file's text goes up, the server parses it."""
    import json
    import subprocess
    import sys

    problem = load(NIST_DIR / "DanWood.dat")
    csv = tmp_path / "danwood.csv"
    csv.write_text(
        "x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(problem.x, problem.y, strict=True))
    )
    spec = problem.spec("multistart", {"starts": 2})
    del spec["data"]
    start_worker(park_server, 1)
    out = subprocess.run(
        [sys.executable, "-m", "park", "submit", "fit", json.dumps(spec), "--data", str(csv),
         "--server", park_server.url, "--wait"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = out.stdout.split()[0]
    with httpx.Client(base_url=park_server.url, timeout=10.0) as http:
        check_nist(problem, result_of(http, job_id))
