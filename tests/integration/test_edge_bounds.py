"""What a real `park serve` accepts it can always read back: payloads too deep, with lone
surrogates or non-finite numbers are refused with a 4xx naming the field and append
nothing; whatever is accepted (as a spec, a tag or a worker's unit result) is appended,
decoded, folded, shown, and survives a `kill -9` and a restart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from park.events.bounds import MAX_DEPTH
from tests.integration.helpers import all_events, client, get_job, get_result, wait_final
from tests.support import ParkServer, free_port

SLEEP = "park.builtins:sleep"


def nested(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def offset(http: httpx.Client) -> int:
    return int(http.get("/healthz").json()["offset"])


def post_raw(http: httpx.Client, path: str, text: str) -> httpx.Response:
    """Send JSON text as is (lone surrogates are only expressible as \\u escapes)."""
    return http.post(path, content=text.encode(), headers={"content-type": "application/json"})


def job_text(inputs: str, tags: str = "{}") -> str:
    """A map job's JSON text around `inputs` and `tags` given as JSON text."""
    spec = '{"function": "' + SLEEP + '", "inputs": ' + inputs + "}"
    return '{"kind": "map", "spec": ' + spec + ', "tags": ' + tags + "}"


def replay(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "park", "replay", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_nested_and_surrogate_payloads_are_refused_a_restart_works_names_are_text(
    tmp_path: Path,
) -> None:
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port()).start()
    try:
        http = client(server.url)
        before = offset(http)
        refused = [
            # (JSON text, the field the answer must name)
            (job_text(json.dumps(nested(200))), "spec.inputs.0.0"),
            (job_text(json.dumps(nested(250))), "spec.inputs.0.0"),
            (job_text('["\\ud800"]'), "spec.inputs.0"),
            (job_text("[1]", tags='{"run": "\\udfff"}'), "tags.run"),
            (job_text("[1e999]"), "spec.inputs.0"),
            (job_text("[" * 5000 + "]" * 5000), "body"),
        ]
        for text, field in refused:
            response = post_raw(http, "/v1/jobs", text)
            assert 400 <= response.status_code < 500, (field, response.text)
            message = response.json()["error"]["message"]
            assert message.startswith(field), (field, message)
        assert offset(http) == before, "a refused request appended something"

        deepest = nested(MAX_DEPTH - 4, "é\u2028\U0001f600")
        job = http.post("/v1/jobs", json={"kind": "map", "spec": {"function": SLEEP,
                        "inputs": [deepest]}, "tags": {"run": "ü"}})  # fmt: skip
        assert job.status_code == 201, job.text
        assert len(all_events(http)) == offset(http)

        server.kill()
        server.start()
        http = client(server.url)
        assert get_job(http, job.json()["id"])["tags"]["run"] == "ü"
        [submitted] = [
            r["event"] for r in all_events(http) if r["event"]["type"] == "job.submitted"
        ]
        assert submitted["spec"]["inputs"] == [deepest]
        done = replay(server.data_dir, "--verify")
        assert done.returncode == 0, done.stdout + done.stderr
        user_names_are_drawn_as_text(http)
    finally:
        server.stop()


def user_names_are_drawn_as_text(http: httpx.Client) -> None:
    """A user named `$\\foo{$` is not math text for matplotlib, nor `<b>` markup."""
    for name in ("$\\foo{$", "<b>&amp;"):
        response = http.put(f"/v1/ledger/{name}/budget", json={"credits": 5})
        assert response.status_code == 200, response.text
    for _ in range(2):  # and again: a drawing that failed once must not fail for ever
        plot = http.get("/v1/ledger/plot.svg")
        assert plot.status_code == 200, plot.text
        assert "\\foo{" in plot.text
        assert "&lt;b&gt;&amp;amp;" in plot.text


# Arbitrary JSON, including what JSON can carry but park must refuse: lone surrogates,
# deep nesting, huge integers.
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
_leaf = (
    st.none() | st.booleans() | _text
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
)  # fmt: skip
_json = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)
_payload = _json | st.integers(1, 60).flatmap(lambda d: _json.map(lambda v: nested(d, v)))


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)  # lone surrogates as \\u escapes


@pytest.mark.slow
def test_arbitrary_payloads_through_the_api_and_the_report_path(tmp_path: Path) -> None:
    """Refused: a 4xx naming the field and nothing appended. Accepted: appended, read
    back through /v1/events, folded (the job's view and result), and after a kill -9 and a
    restart the same again, with `park replay --verify` clean."""
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port()).start()
    http = client(server.url)
    worker = http.post("/v1/workers", json={"name": "reporter", "cpus": 1}).json()["id"]
    accepted: dict[str, Any] = {}  # job id -> the result its one unit reported

    @settings(
        max_examples=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip
    @given(spec_input=_payload, tag=_text, result=_payload)
    def through_the_server(spec_input: Any, tag: str, result: Any) -> None:
        before = offset(http)
        body = {"kind": "map", "spec": {"function": SLEEP, "inputs": [spec_input]},
                "tags": {"t": tag}}  # fmt: skip
        submitted = post_raw(http, "/v1/jobs", _dump(body))
        if submitted.status_code != 201:
            assert 400 <= submitted.status_code < 500, submitted.text
            assert submitted.json()["error"]["message"].startswith(("spec", "tags", "body"))
            assert offset(http) == before
            return
        job_id = submitted.json()["id"]
        assert submitted.json()["tags"]["t"] == tag
        leased = http.post(f"/v1/workers/{worker}/lease", json={"max_units": 1}).json()
        [unit] = leased["units"]
        assert unit["payload"]["items"] == [spec_input]
        before = offset(http)
        report = {"reports": [{"unit_id": unit["id"], "result": [result]}]}
        answer = post_raw(http, f"/v1/workers/{worker}/reports", _dump(report))
        if answer.status_code != 200:
            assert 400 <= answer.status_code < 500, answer.text
            assert answer.json()["error"]["message"].startswith("reports.0.result")
            assert offset(http) == before
            # the unit stays leased to this worker; report something plain to finish it
            plain = {"reports": [{"unit_id": unit["id"], "result": [0]}]}
            answer = http.post(f"/v1/workers/{worker}/reports", json=plain)
            result = 0
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
        assert wait_final(http, job_id)["status"] == "complete"
        assert get_result(http, job_id)["result"] == [result]
        accepted[job_id] = result

    try:
        through_the_server()
        assert accepted, "no example was accepted: the strategy tests nothing"
        records = all_events(http)
        server.kill()
        server.start()
        http = client(server.url)
        assert all_events(http)[: len(records)] == records
        for job_id, result in accepted.items():
            assert get_result(http, job_id)["result"] == [result]
        done = replay(server.data_dir, "--verify")
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        server.stop()
