"""`park serve`: the service with its HTTP API and local workers, on the embedded SQLite log
or a Kafka topic shared with other servers; `park scheduler`: a scheduler alone."""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from park import datadir
from park.api.app import ApiSettings, create_app
from park.api.auth import Role, TokenTable
from park.events.sqlite import SqliteEventLog
from park.scheduler.config import BACKUP_FACTOR, BATCH_GROWTH, ENTRY_AFTER_STRIDE, PolicyConfig
from park.service.archive_store import ArchiveStore
from park.service.background import BackgroundTask
from park.service.collector import collect_less_often
from park.service.engine import ParkService, ServiceConfig
from park.service.limits import UserLimits
from park.service.snapshots import SnapshotStore
from park.settings import SchedulerSettings, ServeSettings
from park.worker.local import LocalWorkers

if TYPE_CHECKING:
    from park.notify.config import NotifierTask

ServeOptions = ServeSettings
SchedulerOptions = SchedulerSettings


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
        archive=ArchiveStore.in_data_dir(data_dir, f"archive-kafka-{settings.topic}"),
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
        archive=ArchiveStore.in_data_dir(options.data_dir),
    )


def service_config(options: ServeOptions) -> ServiceConfig:
    per_user = UserLimits(options.max_active_jobs, options.max_queued_units)
    policy = PolicyConfig(
        hot_finished_jobs=options.hot_jobs,
        hot_finished_seconds=options.hot_hours * 3600.0,
        max_unit_seconds=options.max_unit_seconds,
        backup_factor=options.backup_factor or None,
        batch_growth=BATCH_GROWTH,
        entry_after_stride=ENTRY_AFTER_STRIDE,
    )
    return ServiceConfig(
        lease_seconds=options.lease_seconds,
        limits=per_user,
        policy=policy,
        worker_timeout=options.worker_timeout,
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
        f"http://{connect_host}:{options.port}",
        options.workers,
        token=worker_token,
        # their start lines would repeat the banner; warnings and errors still show
        env={"PARK_LOG_LEVEL": "warning" if options.log_level == "info" else options.log_level},
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

    notifier = notifier_task(options, service, f"http://{connect_host}:{options.port}")

    async def start_workers() -> None:
        notifier.start()
        workers.start()
        if pilots is not None:
            pilots.start()

    async def stop_workers() -> None:
        await notifier.stop()
        if pilots is not None:
            await pilots.stop()
        # in a thread: the workers' goodbyes (DELETE /v1/workers/ID) need this event loop
        await asyncio.to_thread(workers.stop)

    app = create_app(
        service,
        ApiSettings(tokens=tokens, sends_mail=notifier.runner.mailer is not None),
        on_startup=start_workers,
        on_shutdown=stop_workers,
    )
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level="info" if options.access_log else "warning",
        access_log=options.access_log,
    )
    quiet = options.log_level in ("warning", "error")
    banner = None if quiet else serve_banner(options, workers=options.workers)
    try:
        ParkUvicorn(config, service, before_shutdown=stop_workers, banner=banner).run()
    finally:
        if lock is not None:
            lock.close()


def notifier_task(
    options: ServeSettings | SchedulerSettings, service: ParkService, url: str
) -> NotifierTask:
    """The notifier runs in the server: always on its own SQLite log (where it takes over
    attempts its previous run left), only while it leads the scheduler on a Kafka log."""
    from park.notify.config import notifier_task, notify_settings

    try:
        settings = notify_settings(options, options.data_dir, url)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if is_kafka(options.log):
        leading: Callable[[], bool] = lambda: bool(getattr(service, "leading", False))  # noqa: E731
        return notifier_task(service, settings, active=leading, takeover=False)
    return notifier_task(service, settings, active=lambda: True, takeover=True)


def serve_banner(options: ServeSettings, *, workers: int) -> Callable[[str], str]:
    """What a newcomer needs to see once: where it listens, where the work is kept,
    who runs it, whether it asks for tokens. Filled in with the bound URL."""
    if is_kafka(options.log):
        log = f"log {options.log} (snapshots in {options.data_dir})"
    else:
        log = f"data {Path(options.data_dir).resolve()} (SQLite log)"
    tokens = f"tokens on ({options.tokens})" if options.tokens else "tokens off"

    def text(url: str) -> str:
        return (
            f"park serve: {url}  (web page {url}/, API docs {url}/docs)\n"
            f"  {log}; {workers} local worker{'s' if workers != 1 else ''}; {tokens}; "
            f"log level {options.log_level}\n"
            "  Ctrl-C to stop"
        )

    return text


def pilot_manager(
    options: ServeOptions, service: ParkService, url: str, token: str | None
) -> BackgroundTask[Any] | None:
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
    return BackgroundTask("park-pilots", PilotManager(service, settings))


class ParkUvicorn(uvicorn.Server):
    """uvicorn drains in-flight requests before the app's shutdown handlers run; lease
    long-polls are told to answer first, so a stop takes well under a second."""

    def __init__(
        self,
        config: uvicorn.Config,
        service: ParkService,
        *,
        before_shutdown: Callable[[], Awaitable[None]] | None = None,
        banner: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(config)
        self._service = service
        self._before_shutdown = before_shutdown
        self._banner = banner

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        collect_less_often()
        if self._banner is not None and self.started:
            host, port = self.config.host, self.config.port
            for server in self.servers:
                for sock in server.sockets:
                    port = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            print(self._banner(f"http://{shown}:{port}"), flush=True)

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        """Local workers leave while the server still listens (so their leases are given
        back at once, and they are not left registered); then polls end, then uvicorn."""
        if self._before_shutdown is not None:
            await self._before_shutdown()
        self._service.close_polls()
        await super().shutdown(sockets)


def run_scheduler(options: SchedulerOptions) -> None:
    """`park scheduler`: a scheduler candidate without an HTTP API. It follows the log like
    an API server; while it leads, it grants, plans, settles and reaps."""
    if options.log is None or not is_kafka(options.log):
        raise ConfigError(f"--log: expected kafka://HOST:PORT[/topic], not {options.log!r}")
    import asyncio
    import signal

    service = build_following_service(
        options.log,
        options.data_dir,
        config=ServiceConfig(
            lease_seconds=options.lease_seconds,
            # as `park serve`'s defaults, so a leader change does not switch them off
            policy=PolicyConfig(
                backup_factor=BACKUP_FACTOR,
                batch_growth=BATCH_GROWTH,
                entry_after_stride=ENTRY_AFTER_STRIDE,
            ),
        ),
        candidate=True,
        name=f"park-scheduler-{os.getpid()}",
    )
    notifier = notifier_task(options, service, "http://127.0.0.1:8080")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        collect_less_often()
        notifier.start()
        print(
            f"park scheduler: log {options.log} (snapshots in {options.data_dir}); "
            f"log level {options.log_level}; Ctrl-C to stop",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await notifier.stop()
            await service.stop()

    asyncio.run(run())
