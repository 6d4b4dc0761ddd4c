"""The web page at `/` and the routes only it needs: a job's work units, plots of a job's
result and of the ledger (SVG drawn by matplotlib on the server).

The page itself is static (park/api/static: HTML, CSS and plain JavaScript, no build step)
and talks to the same HTTP API as every other client: the live table follows
`GET /v1/jobs/stream`, a job's page reads `/v1/jobs/{id}`, `/units`, `/explain` and
`/plot.svg`, and the cancel button posts `/v1/jobs/{id}/cancel`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from park.api.access import Rules, Service, Who
from park.api.history import day_range, days_json
from park.api.plots import NoPlot, days_svg, fit_svg, ledger_svg, map_svg
from park.api.schemas import ledger_json
from park.domain import JobStatus, UnitStatus
from park.errors import Conflict, NotFound
from park.projections.archive import units_summary
from park.projections.state import JobView, UnitView
from park.service.history import usage_by_day

STATIC = Path(__file__).parent / "static"
SVG = "image/svg+xml"
PLOTS_KEPT = 64  # rendered plots of finished jobs (immutable) kept in memory
FILES = {p.name: p for p in STATIC.iterdir() if p.is_file()}

router = APIRouter()


def unit_json(unit: UnitView) -> dict[str, Any]:
    return {
        "id": unit.id,
        "status": unit.status.value,
        "attempts": unit.attempts,
        "failures": unit.failures,
        "last_error": unit.last_error,
        "worker": unit.worker_id,
        "lease_deadline": unit.lease_deadline,
        "backups": unit.backups,
        "backup_worker": unit.backup_worker_id,
    }


def _draw(job: JobView) -> bytes:
    if job.kind == "fit":
        return fit_svg(job.spec, job.result)
    if job.kind == "map":
        return map_svg(job.spec["inputs"], job.result)
    raise NoPlot(f"there is no plot for jobs of kind {job.kind!r}")


def plots_of(request: Request) -> OrderedDict[str, bytes]:
    """The app's rendered plots of finished jobs, newest used last."""
    state = request.app.state
    if not hasattr(state, "plots"):
        state.plots = OrderedDict()
    plots: OrderedDict[str, bytes] = state.plots
    return plots


# -- the page -----------------------------------------------------------------------------


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(FILES["index.html"], headers={"Cache-Control": "no-cache"})


@router.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def static(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


# -- what the page shows ------------------------------------------------------------------


@router.get("/v1/jobs/{job_id}/units")
async def job_units(
    job_id: str,
    service: Service,
    access: Rules,
    who: Who,
    limit: int = Query(default=1000, ge=1, le=100_000),
) -> dict[str, Any]:
    """The job's work units (id, status, attempts, worker), its owner only. A finished
    job's units are forgotten: its list is empty, its `summary` says what they did. An
    active job lists its units in flight and its latest completed ones; `counts` and
    `total` count all of them."""
    job = access.own_job(job_id, who)
    units = [service.state.units[u] for u in job.unit_ids if u in service.state.units]
    counts = Counter(u.status.value for u in units if u.status is not UnitStatus.DONE)
    if job.units_done:
        counts[UnitStatus.DONE.value] = job.units_done
    return {
        "id": job.id,
        "status": job.status.value,
        "total": job.units_total if job.active else len(units),
        "counts": dict(counts),
        "units": [unit_json(u) for u in units[:limit]],
        "summary": None if job.active else units_summary(job),
        "offset": service.state.offset,
    }


@router.get(
    "/v1/jobs/{job_id}/plot.svg",
    response_class=Response,
    responses={200: {"content": {SVG: {}}}, 409: {"description": "not finished yet"}},
)
async def job_plot(job_id: str, request: Request, access: Rules, who: Who) -> Response:
    """The finished job's result drawn: for fits, the data with the best-fit curve, the
    residuals and the best chi-squared per generation or start; for map jobs, numeric
    outputs against their inputs."""
    job = access.own_job(job_id, who)
    if job.active:
        raise Conflict(f"job {job_id!r} is still {job.status.value}; no plot until it ends")
    if job.status is not JobStatus.COMPLETE:
        raise NotFound(f"job {job_id!r} is {job.status.value}: it has no result to plot")
    plots = plots_of(request)
    svg = plots.get(job.id)
    if svg is None:
        try:
            svg = await run_in_threadpool(_draw, job)
        except NoPlot as err:
            raise NotFound(f"job {job_id!r}: no plot: {err}") from None
        plots[job.id] = svg
        while len(plots) > PLOTS_KEPT:
            plots.popitem(last=False)
    else:
        plots.move_to_end(job.id)
    return Response(svg, media_type=SVG, headers={"Cache-Control": "private, max-age=3600"})


@router.get("/v1/ledger/plot.svg", response_class=Response, responses={200: {"content": {SVG: {}}}})
async def ledger_plot(service: Service, _: Who) -> Response:
    """Charged credit and decayed usage per user, as a bar chart."""
    users = ledger_json(service.state, service.clock())["users"]
    svg = await run_in_threadpool(ledger_svg, users)
    return Response(svg, media_type=SVG, headers={"Cache-Control": "no-store"})


@router.get("/v1/ledger/days.svg", response_class=Response, responses={200: {"content": {SVG: {}}}})
async def ledger_days_plot(
    service: Service,
    _: Who,
    first: str | None = Query(default=None, alias="from", description="first day (ISO)"),
    last: str | None = Query(default=None, alias="to", description="last day (ISO)"),
) -> Response:
    """Work done per day, stacked by user (the last 30 days unless `from`/`to`)."""
    start, end = day_range(first, last, service.clock())
    days = days_json(usage_by_day(service.state, service.archive, start, end))
    svg = await run_in_threadpool(days_svg, days)
    return Response(svg, media_type=SVG, headers={"Cache-Control": "no-store"})


__all__ = ["router", "unit_json"]
