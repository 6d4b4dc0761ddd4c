"""The web page in real headless Chromium against a real `park serve` and real workers.

The live table shows a new job within a second, its progress moves and it leaves the
active view when done; the cancel buttons cancel (and show the server's refusal); a fit
job's page shows the plot of its result (saved as test-artifacts/job-page.png); a straggler's
backup attempt shows in its job's unit table beside the first attempt; the token
a user pastes is kept and sent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.support import ParkServer, wait_for
from tests.web.test_endpoints import FIT_SPEC

ANN = {"X-Park-User": "ann"}


def submit(server: ParkServer, body: dict[str, Any], headers: dict[str, str] = ANN) -> str:
    response = httpx.post(f"{server.url}/v1/jobs", json=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def sleeps(*seconds: float) -> dict[str, Any]:
    return {"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": list(seconds)}}


def status_of(server: ParkServer, job_id: str, headers: dict[str, str] = ANN) -> str:
    response = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=headers, timeout=10)
    return str(response.json()["status"])


def open_live(page: Page, url: str) -> None:
    """Open the page on its active view and wait until its table follows the stream
    (snapshot received)."""
    page.goto(url)
    page.select_option("#filter-status", "active")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#conn")).to_have_attribute("data-offset", lambda_any())


def lambda_any() -> Any:
    import re

    return re.compile(r"^\d+$")


def test_a_new_job_shows_within_a_second_progresses_and_leaves_when_done(
    page: Page, web_server: ParkServer
) -> None:
    open_live(page, web_server.url)
    job_id = submit(web_server, sleeps(*[0.3] * 8))
    submitted = time.monotonic()
    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    row.wait_for(state="visible", timeout=1000)
    assert time.monotonic() - submitted < 1.0
    expect(row.locator("td").nth(1)).to_have_text("ann")

    # Its progress bar, read as it moves, until the row leaves the active view.
    seen: list[float] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = page.evaluate(
            """id => { const bar = document.querySelector(`#jobs tr[data-job-id="${id}"] progress`);
                       return bar ? bar.value : null; }""",
            job_id,
        )
        if value is None:
            break
        seen.append(float(value))
        time.sleep(0.03)
    else:
        raise AssertionError(f"the row stayed in the active view: {seen[-5:]}")
    distinct = sorted(set(seen))
    assert seen == sorted(seen), "progress went backwards"
    assert len([v for v in distinct if 0 < v < 1]) >= 2, distinct
    assert status_of(web_server, job_id) == "complete"

    # Gone from the active view, it is among the finished ones, complete.
    page.select_option("#filter-status", "finished")
    finished = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(finished).to_have_attribute("data-status", "complete")
    expect(finished.locator("button.cancel")).to_have_count(0)


def test_the_cancel_buttons_cancel(page: Page, web_server: ParkServer) -> None:
    open_live(page, web_server.url)
    # Many short units: once cancelled, the workers are free again within half a second.
    in_table = submit(web_server, sleeps(*[0.5] * 40))
    row = page.locator(f'#jobs tr[data-job-id="{in_table}"]')
    row.locator("button.cancel").click()
    expect(row).to_have_count(0)
    assert wait_for(lambda: status_of(web_server, in_table) == "cancelled", 5)

    on_its_page = submit(web_server, sleeps(*[0.5] * 40))
    page.goto(f"{web_server.url}/#/jobs/{on_its_page}")
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#units tbody tr")).to_have_count(40)
    expect(page.locator("#units tbody tr td:nth-child(2)", has_text="leased")).not_to_have_count(0)
    page.locator("#job-cancel").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(page.locator("#job-cancel")).to_be_hidden()
    assert status_of(web_server, on_its_page) == "cancelled"
    expect(page.locator("#job-plot-note")).to_contain_text("no result to plot")


def test_a_straggler_and_its_backup_attempt_show_in_the_unit_table(
    page: Page, web_server: ParkServer
) -> None:
    # Five short units and a long one: the worker done with the short ones backs up the
    # long one (docs/scheduling.md, "Backup attempts"); its row names both workers.
    job_id = submit(web_server, sleeps(0.1, 6.0, 0.1, 0.1, 0.1, 0.1))
    page.goto(f"{web_server.url}/#/jobs/{job_id}")
    workers = page.locator(f'#units tr[data-unit-id="{job_id}/1"] td:nth-child(4)')
    expect(workers).to_contain_text("+ backup on", timeout=20_000)
    first, backup = workers.locator("code").all_inner_texts()
    assert first != backup
    assert wait_for(lambda: status_of(web_server, job_id) == "complete", 30)


def test_a_fit_job_page_shows_its_plot(page: Page, web_server: ParkServer, artifacts: Path) -> None:
    spec = {**FIT_SPEC, "method": "de", "options": {"generations": 25, "seed": 3}}
    job_id = submit(web_server, {"kind": "fit", "spec": spec, "tags": {"name": "saturation"}})
    page.goto(f"{web_server.url}/#/jobs/{job_id}")  # opened while it runs
    expect(page.locator("#job-id")).to_have_text(job_id)
    expect(page.locator("#job-status")).to_have_text("complete", timeout=60_000)
    plot = page.locator("#job-plot-img")
    # The server's first plot: matplotlib is imported, then the figure drawn (seconds here).
    expect(plot).to_have_attribute("data-loaded", "true", timeout=60_000)
    expect(page.locator("#job-plot-note")).to_be_hidden()
    width = plot.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width > 300
    expect(page.locator("#job-progress")).to_have_js_property("value", 1)
    expect(page.locator("#job-why")).to_be_hidden()  # a finished job waits for nothing
    expect(page.locator("#job-result table.params tbody tr")).to_have_count(2)
    expect(page.locator("#job-facts")).to_contain_text("name=saturation")
    page.screenshot(path=str(artifacts / "job-page.png"), full_page=True)
    assert (artifacts / "job-page.png").stat().st_size > 10_000

    page.click("nav a[data-nav=ledger]")
    expect(page.locator("#ledger-plot")).to_have_attribute("data-loaded", "true")
    expect(page.locator('#ledger tbody tr[data-user="ann"]')).to_have_count(1)
    page.click("nav a[data-nav=workers]")
    expect(page.locator("#workers tbody tr")).to_have_count(2)


def test_table_filters_and_sorts(page: Page, token_server: ParkServer) -> None:
    bob = {"Authorization": "Bearer bob-secret"}
    ann = {"Authorization": "Bearer ann-secret"}
    bobs = [submit(token_server, sleeps(1.0), bob) for _ in range(2)]
    anns = [submit(token_server, sleeps(1.0), ann) for _ in range(3)]
    page.goto(token_server.url)
    page.fill("#token-input", "ann-secret")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(5)
    page.fill("#filter-user", "bob")
    expect(rows).to_have_count(2)
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")) == sorted(bobs)
    page.fill("#filter-user", "")
    page.select_option("#filter-status", "running")
    expect(rows).to_have_count(0)  # no workers: all pending
    page.select_option("#filter-status", "active")
    page.click("#jobs th[data-sort=user]")
    expect(page.locator("#jobs th[data-sort=user]")).to_have_attribute("aria-sort", "ascending")
    users = rows.evaluate_all("rs => rs.map(r => r.children[1].textContent)")
    assert users == ["ann"] * 3 + ["bob"] * 2
    page.click("#jobs th[data-sort=user]")
    expect(page.locator("#jobs th[data-sort=user]")).to_have_attribute("aria-sort", "descending")
    users = rows.evaluate_all("rs => rs.map(r => r.children[1].textContent)")
    assert users == ["bob"] * 2 + ["ann"] * 3
    for job_id, owner in [*((j, ann) for j in anns), *((j, bob) for j in bobs)]:
        httpx.post(f"{token_server.url}/v1/jobs/{job_id}/cancel", headers=owner)  # tidy up


def test_a_pasted_token_is_kept_and_sent(page: Page, token_server: ParkServer) -> None:
    page.goto(token_server.url)
    expect(page.locator("#token-state")).to_contain_text("needs a token")
    page.fill("#token-input", "ann-secret")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert page.evaluate("localStorage.getItem('park.token')") == "ann-secret"

    bobs = submit(token_server, sleeps(1.0), {"Authorization": "Bearer bob-secret"})
    anns = submit(token_server, sleeps(1.0), {"Authorization": "Bearer ann-secret"})
    submitted = time.monotonic()
    page.locator(f'#jobs tr[data-job-id="{anns}"]').wait_for(timeout=1000)
    assert time.monotonic() - submitted < 1.0

    # Bob's job: the server refuses, and the page says what the server said.
    page.locator(f'#jobs tr[data-job-id="{bobs}"] button.cancel').click()
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-text")).to_contain_text(f"Could not cancel job {bobs}")
    refusal = httpx.post(
        f"{token_server.url}/v1/jobs/{bobs}/cancel",
        headers={"Authorization": "Bearer ann-secret"},
    ).json()["error"]["message"]
    expect(page.locator("#error-text")).to_contain_text(refusal)
    assert status_of(token_server, bobs, {"Authorization": "Bearer bob-secret"}) == "pending"

    # Her own: cancelled, with the token the page kept (after a reload, too).
    page.reload()
    page.select_option("#filter-status", "active")
    expect(page.locator("#token-state")).to_have_text("token in use")
    page.locator(f'#jobs tr[data-job-id="{anns}"] button.cancel').click()
    expect(page.locator(f'#jobs tr[data-job-id="{anns}"]')).to_have_count(0)
    assert status_of(token_server, anns, {"Authorization": "Bearer ann-secret"}) == "cancelled"
    page.goto(f"{token_server.url}/#/jobs/{anns}")
    expect(page.locator("#job-status")).to_have_text("cancelled")
    httpx.post(
        f"{token_server.url}/v1/jobs/{bobs}/cancel", headers={"Authorization": "Bearer bob-secret"}
    )


def test_the_worker_view_lists_batch_pilots(page: Page, web_server: ParkServer) -> None:
    """A pilot recorded as `park pilot submit` records it (no batch system needed here)."""
    body = {"batch_id": "4711", "request": {"scheduler": "slurm", "nodes": 2, "queue": "debug"}}
    answer = httpx.post(f"{web_server.url}/v1/pilots", json=body, headers=ANN, timeout=10)
    assert answer.status_code == 201, answer.text
    page.goto(web_server.url + "/#/workers")
    row = page.locator(f'#pilots tr[data-pilot-id="{answer.json()["id"]}"]')
    expect(row).to_contain_text("4711")  # its state: what this machine's squeue says of it
    expect(row.locator("td").nth(5)).to_have_text("debug")
    expect(row.locator("td").nth(7)).to_have_text("any job")
    expect(page.locator("#pilot-count")).to_contain_text("live")
