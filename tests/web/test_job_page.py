"""The web page as a newcomer meets it after the first jobs, in real headless Chromium:
finished work stays in the default view; a finished job's page has its name, tags, spec,
duration and parameter correlations and no "Why it waits"; a scan's page shows its χ²
surface (a heat map over two parameters, a profile over one); the worker view shows each
worker's current job, as a link, and its units done per minute."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.support import ParkServer, wait_for

DECAY = {
    "model": "a*exp(-b*x)",
    "data": {"x": [0, 1, 2, 3, 4, 5, 6, 7], "y": [5.0, 3.1, 1.8, 1.1, 0.7, 0.4, 0.25, 0.15]},
    "parameters": {"a": {"value": 1, "min": 0, "max": 50}, "b": {"value": 1, "min": 0, "max": 5}},
}
PLOT_MS = 60_000  # a plot is drawn by matplotlib on the server: seconds on a loaded machine


def submit(server: ParkServer, body: dict[str, Any]) -> str:
    response = httpx.post(f"{server.url}/v1/jobs", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def status(server: ParkServer, job_id: str) -> str:
    return str(httpx.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()["status"])


def finished(server: ParkServer, body: dict[str, Any]) -> str:
    job_id = submit(server, body)
    assert wait_for(lambda: status(server, job_id) == "complete", timeout=90)
    return job_id


def plot_text(page: Page) -> str:
    """The words of the plot the page shows (its SVG's text: titles, labels, legend)."""
    plot = page.locator("#job-plot-img")
    expect(plot).to_have_attribute("data-loaded", "true", timeout=PLOT_MS)
    assert plot.evaluate("img => img.naturalWidth") > 300
    return str(
        plot.evaluate(
            """async img => {
                 const svg = await (await fetch(img.src)).text();
                 return new DOMParser().parseFromString(svg, "image/svg+xml")
                   .documentElement.textContent;
               }"""
        )
    )


def test_finished_jobs_stay_in_the_default_view_and_their_page_tells_all(
    page: Page, web_server: ParkServer
) -> None:
    fit = {**DECAY, "method": "multistart", "options": {"starts": 2}}
    job_id = finished(web_server, {"kind": "fit", "spec": fit, "name": "decay",
                                   "tags": {"sample": "s1"}})  # fmt: skip
    page.goto(web_server.url)
    expect(page.locator("#filter-status")).to_have_value("recent")
    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(row).to_have_attribute("data-status", "complete")
    expect(page.locator("#jobs-empty")).to_be_hidden()

    row.locator("a").first.click()
    expect(page.locator("#job-status")).to_have_text("complete")
    facts = page.locator("#job-facts")
    expect(
        facts.locator("dt", has_text="name").locator("xpath=following-sibling::dd[1]")
    ).to_have_text("decay")
    expect(facts).to_contain_text("sample=s1")
    expect(
        facts.locator("dt", has_text="duration").locator("xpath=following-sibling::dd[1]")
    ).to_have_text(re.compile(r"^\d+(\.\d)? s$|^\d+ min \d+ s$"))
    expect(page.locator("#job-why")).to_be_hidden()  # a finished job waits for nothing
    expect(page.locator("#job-spec")).to_be_hidden()  # folded until asked for
    page.locator("#job-spec-box summary").click()
    spec = page.locator("#job-spec")
    expect(spec).to_contain_text('"expr": "a*exp(-b*x)"')
    expect(spec).to_contain_text('"x": [0, 1, 2, 3, 4, 5, 6, 7]')  # a list on one line
    result = page.locator("#job-result")
    expect(result.locator("table.correlations tbody tr")).to_have_count(1)
    expect(result.locator("table.correlations tbody tr td").first).to_have_text("a, b")
    expect(result.locator("table.correlations tbody tr td").nth(1)).to_have_text(
        re.compile(r"^-?0\.\d{4}$")
    )
    expect(result).to_contain_text("AIC")
    expect(result).to_contain_text("R²")
    expect(result).to_contain_text("Standard errors:")
    expect(page.locator("#job-plot-img")).to_have_attribute("data-loaded", "true", timeout=PLOT_MS)


def test_a_scans_page_shows_its_chi_squared_surface(page: Page, web_server: ParkServer) -> None:
    scan = {**DECAY, "method": "scan", "options": {"points": 12}}
    two = finished(web_server, {"kind": "fit", "spec": scan})
    fixed_b = {**DECAY["parameters"], "b": {"value": 0.5, "fixed": True}}
    one = finished(web_server, {"kind": "fit", "spec": {**scan, "parameters": fixed_b}})

    page.goto(f"{web_server.url}/#/jobs/{two}")
    text = plot_text(page)
    assert "χ² surface over a and b" in text and "log10 χ²" in text, text
    page.goto(f"{web_server.url}/#/jobs/{one}")
    expect(page.locator("#job-id")).to_have_text(one)
    text = plot_text(page)
    assert "χ² profile over a" in text and "surface" not in text, text


def test_the_worker_view_shows_current_jobs_and_rates(page: Page, web_server: ParkServer) -> None:
    finished(web_server, {"kind": "map", "spec": {
        "function": "park.builtins:sleep", "inputs": [0.01] * 6}})  # fmt: skip
    busy = submit(web_server, {"kind": "map", "spec": {
        "function": "park.builtins:sleep", "inputs": [30, 30], "chunk": 1}})  # fmt: skip
    try:
        page.goto(f"{web_server.url}/#/workers")
        current = page.locator("#workers td.current-job", has_text=busy)
        expect(current).to_have_count(2)  # both local workers run one of its units
        rates = page.locator("#workers td.units-per-minute")
        expect(rates).to_have_count(2)
        for text in rates.all_text_contents():
            assert re.fullmatch(r"\d+(\.\d+)?", text), text
        assert any(float(text) > 0 for text in rates.all_text_contents())

        # Its link opens the job's page: running, with how far it is instead of why it waits.
        current.first.locator("a").click()
        expect(page.locator("#job-id")).to_have_text(busy)
        expect(page.locator("#job-status")).to_have_text("running")
        expect(page.locator("#job-why")).to_be_visible()
        expect(page.locator("#job-why-title")).to_have_text("How far it is")
        page.locator("#job-cancel").click()
        expect(page.locator("#job-status")).to_have_text("cancelled")
        expect(page.locator("#job-why")).to_be_hidden()
    finally:
        httpx.post(f"{web_server.url}/v1/jobs/{busy}/cancel", timeout=10)
