"""`park serve`: the service with its HTTP API and local workers, on the embedded SQLite log
or a Kafka topic shared with other servers; `park scheduler`: a scheduler alone."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from park import datadir
from park.api.app import ApiSettings, create_app
from park.api.auth import Role, TokenTable
from park.events.sqlite import SqliteEventLog
from park.service import limits
from park.service.engine import ParkService, ServiceConfig
from park.service.limits import UserLimits
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
    # The log: None for the embedded SQLite file under `data_dir`, or kafka://HOST:PORT[/topic]
    # for a topic shared with other servers (then `scheduler`: stand as scheduler leader).
    log: str | None = None
    scheduler: bool = True
    # The adaptive pool of batch pilots (`slurm:max-nodes=8,idle=300,...`), and the URL
    # pilots' workers reach this server at (default: the one it listens on).
    pilots: str | None = None
    pilot_server: str | None = None
    # Per user: the most active jobs and queued units (beyond them, a submission is a 429).
    max_active_jobs: int = limits.ACTIVE_JOBS
    max_queued_units: int = limits.QUEUED_UNITS


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    pass


def is_kafka(log: str | None) -> bool:
    return bool(log) and str(log).startswith("kafka://")


def build_following_service(
    url: str, data_dir: Path, *, config: ServiceConfig, candidate: bool, name: str
) -> ParkService:
    """A service on a Kafka topic shared with other servers; snapshots per topic, so a
    data directory never mixes two logs' states."""
    from park.events.kafka import KafkaEventLog, KafkaSettings
    from park.service.election import KafkaElection
    from park.service.following import FollowingService

    try:
        settings = KafkaSettings.from_url(url)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    return FollowingService(
        KafkaEventLog(settings),
        elector=KafkaElection(settings, name) if candidate else None,
        snapshots=SnapshotStore(Path(data_dir) / "snapshots" / f"kafka-{settings.topic}"),
        config=config,
    )


def build_service(options: ServeOptions) -> ParkService:
    if options.log and options.log != "sqlite":
        if not is_kafka(options.log):
            raise ConfigError(f"--log: expected kafka://HOST:PORT[/topic], not {options.log!r}")
        return build_following_service(
            options.log,
            options.data_dir,
            config=service_config(options),
            candidate=options.scheduler,
            name=f"park-serve-{options.host}-{options.port}-{os.getpid()}",
        )
    return ParkService(
        SqliteEventLog.in_data_dir(options.data_dir, durable=options.durable),
        snapshots=SnapshotStore.in_data_dir(options.data_dir),
        config=service_config(options),
    )


def service_config(options: ServeOptions) -> ServiceConfig:
    per_user = UserLimits(options.max_active_jobs, options.max_queued_units)
    return ServiceConfig(lease_seconds=options.lease_seconds, limits=per_user)


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

    lock = None
    if not is_kafka(options.log):
        lock = datadir.hold(
            options.data_dir, f"process {os.getpid()} (park serve on {options.host}:{options.port})"
        )
        if lock is None:
            raise ConfigError(
                f"--data-dir: {options.data_dir} is in use by {datadir.holder(options.data_dir)}; "
                "one server per data directory (stop that one, or give another --data-dir)"
            )
    service = build_service(options)
    pilots = pilot_manager(options, service, f"http://{connect_host}:{options.port}", worker_token)

    async def start_workers() -> None:
        workers.start()
        if pilots is not None:
            pilots.start()

    async def stop_workers() -> None:
        if pilots is not None:
            await pilots.stop()
        # in a thread: the workers' goodbyes (DELETE /v1/workers/ID) need this event loop
        await asyncio.to_thread(workers.stop)

    app = create_app(
        service,
        ApiSettings(tokens=tokens),
        on_startup=start_workers,
        on_shutdown=stop_workers,
    )
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="warning", access_log=False
    )
    try:
        ParkUvicorn(config, service, before_shutdown=stop_workers).run()
    finally:
        if lock is not None:
            lock.close()


def pilot_manager(
    options: ServeOptions, service: ParkService, url: str, token: str | None
) -> PilotTask | None:
    """Batch pilots (private ones, and the adaptive pool) are run by a server on its own
    SQLite log; with a shared Kafka log they are not managed yet."""
    from park.batch.manager import PilotManager, PilotSettings
    from park.scheduler.pilots import PoolConfig

    try:
        pool = PoolConfig.from_text(options.pilots) if options.pilots else None
    except ValueError as err:
        raise ConfigError(f"--pilots: {err}") from err
    if is_kafka(options.log):
        if pool is not None:
            raise ConfigError("--pilots: not available with a Kafka log yet")
        return None
    settings = PilotSettings(
        server=options.pilot_server or url,
        directory=options.data_dir / "pilots",
        token=token,
        pool=pool,
    )
    return PilotTask(PilotManager(service, settings))


class PilotTask:
    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.manager.run(), name="park-pilots")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


class ParkUvicorn(uvicorn.Server):
    """uvicorn drains in-flight requests before the app's shutdown handlers run; lease
    long-polls are told to answer first, so a stop takes well under a second."""

    def __init__(
        self,
        config: uvicorn.Config,
        service: ParkService,
        *,
        before_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self._service = service
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        """Local workers leave while the server still listens (so their leases are given
        back at once, and they are not left registered); then polls end, then uvicorn."""
        if self._before_shutdown is not None:
            await self._before_shutdown()
        self._service.close_polls()
        await super().shutdown(sockets)


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    log: str
    data_dir: Path = Path("park-data")
    lease_seconds: float = 30.0


def run_scheduler(options: SchedulerOptions) -> None:
    """`park scheduler`: a scheduler candidate without an HTTP API. It follows the log like
    an API server; while it leads, it grants, plans, settles and reaps."""
    if not is_kafka(options.log):
        raise ConfigError(f"--log: expected kafka://HOST:PORT[/topic], not {options.log!r}")
    import asyncio
    import signal

    service = build_following_service(
        options.log,
        options.data_dir,
        config=ServiceConfig(lease_seconds=options.lease_seconds),
        candidate=True,
        name=f"park-scheduler-{os.getpid()}",
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        try:
            await stop.wait()
        finally:
            await service.stop()

    asyncio.run(run())
