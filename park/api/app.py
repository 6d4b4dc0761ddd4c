"""The HTTP API: one FastAPI app of routers per resource (park/api/jobs.py, workers.py,
ledger.py, streams.py, web.py), the authorization rules in access.py, the error shape in
errors.py; here the wiring, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from park.api import jobs, ledger, streams, web, workers
from park.api.access import Access, Service, caller_of
from park.api.auth import TokenTable
from park.api.errors import BodyLimit, answer_errors_as_json, error_response
from park.api.metrics import ParkCollector
from park.api.notify import notify_router
from park.api.openapi import document
from park.api.pilots import pilot_router
from park.api.telemetry import EventMetrics, RequestTimer, process_metrics
from park.service.engine import ParkService

MAX_BODY_BYTES = 32 * 1024 * 1024

__all__ = ["MAX_BODY_BYTES", "ApiSettings", "create_app", "error_response"]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    tokens: TokenTable | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    sends_mail: bool = False  # an SMTP server is configured (--smtp)


def create_app(
    service: ParkService,
    settings: ApiSettings | None = None,
    *,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The app serving `service`; `on_startup`/`on_shutdown` run after the service has
    started and before it stops (local workers come and go there)."""
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        service.feed.observers.append(event_metrics)  # live events only, not the catch-up
        if on_startup is not None:
            await on_startup()
        try:
            yield
        finally:
            if on_shutdown is not None:
                await on_shutdown()
            await service.stop()

    app = FastAPI(
        title="park",
        version="0.1.0",
        description="A fair-share job service for scientific fitting.",
        lifespan=lifespan,
    )
    app.state.access = Access(service, settings.tokens)
    registry = CollectorRegistry()
    event_metrics = EventMetrics(registry)
    process_metrics(registry)
    registry.register(ParkCollector(service))
    app.state.metrics = registry
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestTimer, registry=registry)
    answer_errors_as_json(app)
    # streams first: /v1/jobs/stream must not be taken for a job id
    app.include_router(streams.router)
    app.include_router(web.router)
    app.include_router(pilot_router(service, caller_of))
    app.include_router(notify_router(service, caller_of, sends_mail=settings.sends_mail))
    for module in (jobs, workers, ledger):
        app.include_router(module.router)
    app.add_api_route("/healthz", healthz)
    app.add_api_route("/metrics", metrics, response_class=PlainTextResponse)
    document(app)
    return app


async def healthz(service: Service) -> dict[str, Any]:
    return {"status": "ok", "offset": service.state.offset}


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
