"""What a scientist reads: `park submit --wait` and `park show` print a summary with an
lmfit-style fit report (`--json` the raw form); jobs carry a name and the same default
tags from the command line and from Python."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import park
from park.kinds.fit.result import information_criteria
from tests.support import ParkServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def park_cli(*args: str, server: ParkServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "park", *args, "--server", server.url],
        capture_output=True, text=True, timeout=240, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_information_criteria_are_lmfits() -> None:
    got = information_criteria(chisq=10.0, ndata=20, nvarys=2)
    assert math.isclose(got["aic"], 20 * math.log(0.5) + 4)
    assert math.isclose(got["bic"], 20 * math.log(0.5) + math.log(20) * 2)


def test_wait_prints_a_fit_report_and_show_json_the_raw_result(
    park_server: ParkServer, start_worker
) -> None:
    start_worker(park_server)
    done = park_cli(
        "submit", "fit", f"@{EXAMPLES / 'fit-spec.json'}", "--data",
        str(EXAMPLES / "points.csv"), "--name", "decay", "--wait", server=park_server,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0].strip()
    report = done.stdout
    expected = [
        f'job {job_id} "decay": fit, complete', "[[Fit Statistics]]",
        "# data points      = 101", "# variables        = 3", "reduced chi-square",
        "Akaike info crit", "Bayesian info crit", "R-squared", "[[Variables]]",
        "(init = 1)", "lmfit scale_covar=False", "[[Correlations]]", "C(tau, c)",
    ]  # fmt: skip
    for text in expected:
        assert text in report, (text, report)
    assert "%)" in report.split("amp:")[1].splitlines()[0]  # the % error
    assert '"x"' not in report and len(report.splitlines()) < 40  # no data dump

    raw = json.loads(park_cli("show", job_id, "--json", server=park_server).stdout)
    assert raw["name"] == "decay"
    result = raw["result"]
    tau = result["parameters"]["tau"]
    assert math.isclose(tau["stderr_scaled"], tau["stderr_unscaled"] * math.sqrt(result["redchi"]))
    assert tau["stderr"] == tau["stderr_unscaled"]  # dy given: unscaled, as it says
    assert 0.99 < result["rsquared"] <= 1.0
    assert abs(tau["value"] - 2.5) < 5 * tau["stderr"]

    shown = park_cli("show", job_id, server=park_server).stdout
    assert "[[Variables]]" in shown and "decay" in shown
    listed = park_cli("jobs", server=park_server).stdout
    assert "decay" in listed


def test_python_and_cli_jobs_have_the_same_default_tags(park_server: ParkServer) -> None:
    spec = '{"function": "park.builtins:sleep", "inputs": [0]}'
    job_id = park_cli("submit", "map", spec, "--name", "cli", server=park_server).stdout.strip()
    with park.remote(park_server.url):
        job = park.submit("map", json.loads(spec), name="python")
        from_python = job.info()
    from_cli = json.loads(park_cli("show", job_id, "--json", server=park_server).stdout)
    assert set(from_cli["tags"]) == set(from_python["tags"]) == {
        "user", "service", "submitted", "name"
    }  # fmt: skip
    assert from_cli["tags"]["service"] == from_python["tags"]["service"] == park_server.url
    assert (from_cli["name"], from_python["name"]) == ("cli", "python")
