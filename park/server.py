"""`park serve`: the embedded service (SQLite log) with its HTTP API and local workers."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from park.api.app import ApiSettings, create_app
from park.api.auth import Role, TokenTable
from park.events.sqlite import SqliteEventLog
from park.service.engine import ParkService, ServiceConfig
from park.service.snapshots import SnapshotStore
from park.worker.local import LocalWorkers


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("park-data")
    workers: int = os.cpu_count() or 1
    lease_seconds: float = 30.0
    tokens: Path | None = None
    insecure: bool = False
    durable: bool = False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    pass


def build_service(options: ServeOptions) -> ParkService:
    return ParkService(
        SqliteEventLog.in_data_dir(options.data_dir, durable=options.durable),
        snapshots=SnapshotStore.in_data_dir(options.data_dir),
        config=ServiceConfig(lease_seconds=options.lease_seconds),
    )


def serve(options: ServeOptions) -> None:
    tokens = TokenTable.load(options.tokens) if options.tokens else None
    if tokens is None and not is_loopback(options.host) and not options.insecure:
        raise ConfigError(
            f"refusing to serve on {options.host} without tokens: pass --tokens FILE, "
            "or --insecure if every client on that network may act as any user"
        )
    worker_token = None
    if tokens is not None:
        worker_token = next(
            (t for t, (_, role) in tokens.tokens.items() if role in (Role.WORKER, Role.ADMIN)),
            None,
        )
        if worker_token is None and options.workers:
            raise ConfigError("local workers need a token with role 'worker' in the token file")
    connect_host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
    workers = LocalWorkers(
        f"http://{connect_host}:{options.port}", options.workers, token=worker_token
    )

    async def start_workers() -> None:
        workers.start()

    async def stop_workers() -> None:
        workers.stop()

    service = build_service(options)
    app = create_app(
        service,
        ApiSettings(tokens=tokens),
        on_startup=start_workers,
        on_shutdown=stop_workers,
    )
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="warning", access_log=False
    )
    ParkUvicorn(config, service).run()


class ParkUvicorn(uvicorn.Server):
    """uvicorn drains in-flight requests before the app's shutdown handlers run; lease
    long-polls are told to answer first, so a stop takes well under a second."""

    def __init__(self, config: uvicorn.Config, service: ParkService) -> None:
        super().__init__(config)
        self._service = service

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        self._service.close_polls()
        await super().shutdown(sockets)
