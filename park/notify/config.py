"""The notification settings of `park serve|scheduler|notifier` (declared in
park/settings.py: flags, PARK_* variables, config file) checked into NotifySettings; the
task that runs the notifier beside the service; `park notifier`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from park.notify.notifier import Notifier, NotifySettings, webhook_secret
from park.notify.plan import DigestSchedule
from park.notify.send import SmtpSettings
from park.service.background import BackgroundTask
from park.service.engine import ParkService
from park.settings import NotifierSettings, NotifyFields

log = logging.getLogger("park.notify")


def notify_settings(s: NotifyFields, data_dir: Path, default_url: str) -> NotifySettings:
    """Checked settings from `park serve|scheduler|notifier`'s; ValueError names the
    setting at fault."""
    smtp = SmtpSettings.from_url(s.smtp, s.smtp_password_file) if s.smtp else None
    return NotifySettings(
        smtp=smtp,
        mail_from=s.mail_from or f"park@{smtp.host if smtp else 'localhost'}",
        schedule=DigestSchedule.parse(s.digest_time, s.digest_timezone),
        public_url=(s.public_url or default_url).rstrip("/"),
        webhook_secret=webhook_secret(s.webhook_secret_file, data_dir),
    )


NotifierTask = BackgroundTask[Notifier]


def notifier_task(
    service: ParkService,
    settings: NotifySettings,
    *,
    active: Callable[[], bool],
    takeover: bool,
) -> NotifierTask:
    """The notifier as a background task of a server process."""
    notifier = Notifier(service, settings, active=active, takeover=takeover)
    return BackgroundTask("park-notifier", notifier)


def run_notifier(options: NotifierSettings) -> None:
    """`park notifier --log kafka://...`: a notifier in a process of its own. It follows
    the log (no scheduling) and notifies while it leads its own election, so standbys can
    wait beside it; beside a scheduler leader that notifies too, the log's first-wins
    attempts keep every message single."""
    import signal

    from park.server import ConfigError, build_following_service, is_kafka
    from park.service.election import KafkaElection
    from park.service.engine import ServiceConfig

    log_url, data_dir = options.log or "", options.data_dir
    if not is_kafka(log_url):
        raise ConfigError(f"--log: expected kafka://HOST:PORT[/topic], not {log_url!r}")
    try:
        settings = notify_settings(options, data_dir, "http://127.0.0.1:8080")
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if settings.smtp is None:
        log.warning("park notifier: no --smtp: only webhooks will be sent")
    name = f"park-notifier-{os.getpid()}"
    service = build_following_service(
        log_url, data_dir, config=ServiceConfig(), candidate=False, name=name
    )
    from park.events.kafka import KafkaSettings

    election = KafkaElection(KafkaSettings.from_url(log_url), name, role="notifier")
    leading = False

    async def elected() -> None:
        nonlocal leading
        log.warning("notifier: leading")
        leading = True

    async def deposed() -> None:
        nonlocal leading
        log.warning("notifier: no longer leading")
        leading = False

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        task = notifier_task(service, settings, active=lambda: leading, takeover=False)
        task.start()
        electing = asyncio.create_task(election.run(elected, deposed))
        try:
            await stop.wait()
        finally:
            electing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await electing
            await task.stop()
            await service.stop()

    asyncio.run(run())
