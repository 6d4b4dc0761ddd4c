"""Settings of the long-running commands (`park serve`, `park worker`, `park scheduler`).

One typed object per command is the only place a setting is declared: its command-line
flag, its `PARK_*` environment variable, its key in the optional TOML config file and its
line in `--help` (with the default) are all made from the field. To add a setting, add a
field with a `description`; nothing else needs to change.

Precedence, highest first: flag, environment variable, config file, default. The config
file (`--config FILE` or `PARK_CONFIG`) holds keys at the top level (for every command
that has them) and in a `[serve]`, `[worker]` or `[scheduler]` table.
"""

from __future__ import annotations

import argparse
import contextvars
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from park.protocol import LEASE_POLL_SECONDS, LEASE_SECONDS
from park.scheduler.config import BACKUP_FACTOR
from park.service import limits

ENV_PREFIX = "PARK_"
DEFAULT_SERVER = "http://127.0.0.1:8080"
HIDDEN = "(not shown in --help)"
LogLevel = Literal["debug", "info", "warning", "error"]

_file_values: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "park_settings_file", default=None
)


class SettingsError(Exception):
    """A setting that cannot be used; the message names it and says what to fix."""


class ParkSettings(BaseSettings):
    """What every long-running command takes."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)
    section: ClassVar[str] = ""

    log_level: LogLevel = Field("info", description="how much to log")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            InitSettingsSource(settings_cls, _file_values.get() or {}),
        )


class NotifyFields(ParkSettings):
    """Notifications of finished jobs (park/notify): where mail goes out, when digests."""

    smtp: str | None = Field(
        None,
        description="send notification mail through smtp[s]://[user[:password]@]host:port "
        "(smtps: TLS; smtp: STARTTLS when offered; ?timeout=SECONDS) (default: no mail)",
    )
    smtp_password_file: Path | None = Field(None, description="the SMTP password, in a file")
    mail_from: str | None = Field(
        None, description="the From: of notification mail (default: park@ the SMTP host)"
    )
    digest_time: str = Field("08:00", description="when daily digests go out, HH:MM")
    digest_timezone: str | None = Field(
        None,
        description="the zone of --digest-time, e.g. Europe/Zurich (default: the server's)",
    )
    public_url: str | None = Field(
        None, description="the URL users reach the service at, for links in notifications"
    )
    webhook_secret_file: Path | None = Field(
        None,
        description="the HMAC key that signs webhooks (default: one made in the data directory)",
    )


class ServeSettings(NotifyFields):
    """`park serve`: the HTTP API, the scheduler and local workers."""

    section: ClassVar[str] = "serve"

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on")
    data_dir: Path = Field(Path("park-data"), description="the event log, snapshots and tokens")
    workers: int = Field(
        os.cpu_count() or 1, ge=0, description="local worker processes (0 for none)"
    )
    lease_seconds: float = Field(
        LEASE_SECONDS, gt=0, description="a unit's lease before it expires"
    )
    tokens: Path | None = Field(
        None, description="token file: lines of 'TOKEN USER [user|worker|admin]'"
    )
    insecure: bool = Field(False, description="allow a non-loopback address without tokens")
    durable: bool = Field(
        False, description="fsync every append (survives power loss, not just crashes)"
    )
    log: str | None = Field(
        None,
        description="kafka://HOST:PORT[,HOST:PORT][/topic][?options]: a Kafka topic shared "
        "with other servers (default: the SQLite file in the data directory)",
    )
    scheduler: bool = Field(
        True, description="with a Kafka log: stand as scheduler leader (else run `park scheduler`s)"
    )
    access_log: bool = Field(False, description="log every HTTP request")
    max_active_jobs: int = Field(
        limits.ACTIVE_JOBS, ge=1, description="per user: the most active jobs (more get 429)"
    )
    max_queued_units: int = Field(
        limits.QUEUED_UNITS, ge=1, description="per user: the most queued units (more get 429)"
    )
    pilots: str | None = Field(
        None,
        description="an adaptive pool of batch pilots, e.g. slurm:max-nodes=8,idle=300,"
        "target=300,max-pending=2,cpus-per-node=1,walltime=1:00:00,queue=debug",
    )
    pilot_server: str | None = Field(
        None, description="the URL pilots' workers reach this server at (default: its own)"
    )
    hot_jobs: int = Field(
        10_000, ge=0, description="finished jobs kept in memory; older ones are archived on disk"
    )
    hot_hours: float = Field(
        24.0, ge=0, description="and only those finished within this many hours"
    )
    worker_timeout: float = Field(
        90.0, gt=0, description="a worker silent this many seconds is expired, its leases reaped"
    )
    max_unit_seconds: float = Field(
        86_400.0, gt=0, description="no unit runs longer than this, whatever its job asks"
    )
    backup_factor: float = Field(
        BACKUP_FACTOR,
        ge=0,
        description="a unit leased this many times its job's median unit time gets a backup "
        "attempt on an idle worker (0: never)",
    )


class SchedulerSettings(NotifyFields):
    """`park scheduler`: a scheduler candidate on a Kafka log, without an HTTP API (it
    sends notifications while it leads)."""

    section: ClassVar[str] = "scheduler"

    log: str | None = Field(None, description="kafka://HOST:PORT[/topic]: the shared log")
    data_dir: Path = Field(Path("park-data"), description="for its snapshots")
    lease_seconds: float = Field(
        LEASE_SECONDS, gt=0, description="a unit's lease before it expires"
    )


class NotifierSettings(NotifyFields):
    """`park notifier`: a notifier of finished jobs on a Kafka log, in a process of its
    own (leader or standby of its own election)."""

    section: ClassVar[str] = "notifier"

    log: str | None = Field(None, description="kafka://HOST:PORT[/topic]: the shared log")
    data_dir: Path = Field(Path("park-data"), description="for its snapshots")


class WorkerSettings(ParkSettings):
    """`park worker`: runs units for a server."""

    section: ClassVar[str] = "worker"

    server: str = Field(DEFAULT_SERVER, description="the park server's URL")
    token: str | None = Field(None, description="API token (role worker or admin)")
    cpus: int = Field(os.cpu_count() or 1, ge=1, description="units run at once")
    name: str = Field("", description="shown in the worker list (default: HOST:PID)")
    owner: str | None = Field(None, description="the user this worker belongs to")
    policy: Literal["any", "own-first", "own-only", "job"] = Field(
        "any",
        description="whose units to take: any; own-first (the owner's first); own-only "
        "(needs --owner); job (needs --job)",
    )
    job: str | None = Field(None, description="with --policy job: the one job to serve")
    max_batch: int = Field(256, ge=1, description="most units in one lease")
    target_batch_seconds: float = Field(0.5, gt=0, description="work asked for per lease")
    poll_seconds: float = Field(
        LEASE_POLL_SECONDS, gt=0, description="how long a lease request waits"
    )
    give_up_after: float | None = Field(
        None,
        gt=0,
        description="seconds to keep retrying an unreachable server (default: for ever)",
    )
    check_seconds: float = Field(
        1.0, gt=0, description="how often to ask the server which running units to stop"
    )
    own_only: bool = Field(False, description="a desktop: only its owner's jobs")
    own_first: bool = Field(False, description="a desktop: its owner's jobs first, then any")
    max_load: float | None = Field(
        None, description="pause taking units while the machine's other load is above this"
    )
    hours: str | None = Field(
        None, description="take work only in these local hours, e.g. 18:00-08:00"
    )
    until: float | None = Field(None, description="leave at this time (epoch seconds)")
    pilot: str | None = Field(None, description=HIDDEN)  # set by a pilot's batch script

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        from park.worker.desktop import Hours

        if value is not None:
            Hours.parse(value)
        return value


SETTINGS_CLASSES: tuple[type[ParkSettings], ...] = (
    ServeSettings,
    WorkerSettings,
    SchedulerSettings,
    NotifierSettings,
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _plain_type(annotation: Any) -> Any:
    """`int | None` -> int; Literal and the rest unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def add_arguments(parser: argparse.ArgumentParser, cls: type[ParkSettings]) -> None:
    """One flag per field, with its default and environment variable in the help."""
    for name, field in cls.model_fields.items():
        kind = _plain_type(field.annotation)
        if field.description == HIDDEN:
            parser.add_argument(_flag(name), default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            continue
        shown = field.default if field.default not in (None, "") else "none"
        env = f"env {ENV_PREFIX}{name.upper()}"
        described = field.description or ""
        if "(default:" in described:  # the description says it better
            text = described.replace("(default:", f"({env}; default:")
        else:
            text = f"{described} (default: {shown}; {env})"
        text = text.replace("%", "%%")
        if kind is bool:
            parser.add_argument(
                _flag(name),
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
        elif typing.get_origin(kind) is Literal:
            parser.add_argument(
                _flag(name), choices=typing.get_args(kind), default=argparse.SUPPRESS, help=text
            )
        else:
            metavar = name.upper() if kind in (str, Path) else kind.__name__.upper()
            parser.add_argument(_flag(name), default=argparse.SUPPRESS, metavar=metavar, help=text)
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"TOML file of these settings, top level or in [{cls.section}] "
        f"(env {ENV_PREFIX}CONFIG)",
    )


def _read_config(path: Path, cls: type[ParkSettings]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"config file {path}: not found") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SettingsError(f"config file {path}: {err}") from None
    sections = {c.section: c for c in SETTINGS_CLASSES}
    known = {name for c in SETTINGS_CLASSES for name in c.model_fields}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in sections:
            if not isinstance(value, dict):
                raise SettingsError(f"config file {path}: [{key}] must be a table")
            for name in value:
                if name not in sections[key].model_fields:
                    raise SettingsError(f"config file {path}: [{key}] {name}: unknown setting")
        elif key not in known:
            raise SettingsError(f"config file {path}: {key}: unknown setting")
        elif key in cls.model_fields:
            values[key] = value
    values.update(data.get(cls.section, {}))
    return values


def _describe(err: ValidationError, cls: type[ParkSettings]) -> str:
    problems = []
    for e in err.errors():
        name = str(e["loc"][0]) if e["loc"] else ""
        where = f"{_flag(name)} / {ENV_PREFIX}{name.upper()}" if name in cls.model_fields else name
        problems.append(f"{where}: {e['msg']}")
    return "; ".join(problems)


S = typing.TypeVar("S", bound=ParkSettings)


def load(cls: type[S], args: argparse.Namespace | None = None) -> S:
    """The settings from flags given in `args`, the environment and the config file."""
    given = {k: v for k, v in vars(args or argparse.Namespace()).items() if k in cls.model_fields}
    config = getattr(args, "config", None) or os.environ.get(f"{ENV_PREFIX}CONFIG")
    file_values = _read_config(Path(config), cls) if config else {}
    token = _file_values.set(file_values)
    try:
        return cls(**given)
    except ValidationError as err:
        raise SettingsError(_describe(err, cls)) from None
    finally:
        _file_values.reset(token)
