"""A job finishes, ages out of memory into the archive, and is still found: by id, by user,
by tag, its result, `park show`, and on the web page (its own page with the summary of
its units, and the jobs view filtered by tag) -- on a real server with a real worker that
keeps one finished job in memory (`--hot-jobs 1`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from park.cli import main
from tests.support import ParkServer, free_port, wait_for

ANN = {"X-Park-User": "ann"}


@pytest.fixture
def small_memory_server(tmp_path: Path) -> Iterator[ParkServer]:
    server = ParkServer(
        data_dir=tmp_path / "park-data", port=free_port(), workers=1,
        extra_args=["--hot-jobs", "1"],
    )  # fmt: skip
    server.start(timeout=120)  # (this machine can be slow to start Python)
    try:
        yield server
    finally:
        server.stop()


def run_job(http: httpx.Client, tag: str) -> str:
    body = {
        "kind": "map",
        "spec": {"function": "park.builtins:sleep", "inputs": [0.01, 0.02]},
        "tags": {"run": tag},
    }
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id = str(response.json()["id"])
    wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "complete", timeout=60)
    return job_id


def test_an_archived_job_is_found_by_id_user_tag_and_on_the_web_page(
    page: Page, small_memory_server: ParkServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = small_memory_server
    with httpx.Client(base_url=server.url, headers=ANN, timeout=10) as http:
        first = run_job(http, "first")
        assert http.get("/v1/jobs", params={"status": "complete"}).json()["jobs"][0]["id"] == first
        second = run_job(http, "second")  # ends: `first` leaves memory for the archive

        job = http.get(f"/v1/jobs/{first}").json()
        assert job["status"] == "complete" and job["tags"]["run"] == "first"
        summary = job["units_summary"]
        assert (summary["count"], summary["done"], len(summary["workers"])) == (2, 2, 1)
        assert http.get(f"/v1/jobs/{first}/result").json()["result"] == [0.01, 0.02]
        by_user = [j["id"] for j in http.get("/v1/jobs", params={"user": "ann"}).json()["jobs"]]
        assert by_user == [second, first]
        by_tag = http.get("/v1/jobs", params={"tag": "run=first"}).json()["jobs"]
        assert [j["id"] for j in by_tag] == [first]
        explained = http.get(f"/v1/jobs/{first}/explain").json()
        assert explained["status"] == "complete"
        assert http.post(f"/v1/jobs/{first}/cancel").status_code == 409

    with pytest.raises(SystemExit) as exited:
        main(["show", first, "--server", server.url])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert first in shown and "complete" in shown and "0.02" in shown

    page.set_extra_http_headers(ANN)
    page.goto(f"{server.url}/#/jobs/{first}")
    expect(page.locator("#job-status")).to_have_text("complete")
    expect(page.locator("#units-note")).to_contain_text("2 of 2 units done")
    expect(page.locator("#job-plot-img")).to_be_visible(timeout=60_000)  # (matplotlib: slow here)

    page.goto(f"{server.url}/#/")
    page.select_option("#filter-status", "finished")
    page.fill("#filter-tag", "run=first")
    expect(page.locator(f'#jobs tr[data-job-id="{first}"]')).to_be_visible()
    expect(page.locator(f'#jobs tr[data-job-id="{second}"]')).to_have_count(0)
