"""The scheduling and credit policy's numbers: configuration, recorded on the log.

The service appends a `PolicyConfigured` event whenever its configuration differs from the
one in force, so a replay re-runs every decision with the numbers that made it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from park.domain import DEFAULT_PRICES, Priority

DEFAULT_WEIGHTS: dict[Priority, float] = {
    Priority.FREE: 1.0,
    Priority.LOW: 2.0,
    Priority.NORMAL: 4.0,
    Priority.HIGH: 8.0,
    Priority.URGENT: 16.0,
}

DAY = 86_400.0
# What `park serve` configures: a unit leased twice as long as its job's median unit
# time is a straggler.
BACKUP_FACTOR = 2.0
BATCH_GROWTH = 2.0
# `park serve` and `park scheduler` enter new jobs a stride on (see `entry_after_stride`).
ENTRY_AFTER_STRIDE = True


class PolicyConfig(BaseModel):
    """Defaults: weights 1/2/4/8/16 and prices 0/0.5/1/2/4 credits per core-second for
    free/low/normal/high/urgent; usage decays with a 7-day half-life (as Slurm's default);
    a user's fair-share factor halves per mean usage, or per `usage_scale` credits (one
    core-hour at normal) while usage is smaller than that, and never drops below 0.05;
    a job waiting more than 60 s for work gains weight linearly, doubling after a further
    10 minutes, up to 4x. The last 10,000 finished jobs, or those finished in the last 24 h
    if fewer, stay in memory; older ones are archived. No unit runs longer than
    `max_unit_seconds` (24 h), whatever its job asks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[Priority, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    prices: dict[Priority, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    half_life: float = Field(default=7 * DAY, gt=0)
    fairshare_floor: float = Field(default=0.05, gt=0, le=1)
    usage_scale: float = Field(default=3600.0, gt=0)
    age_grace: float = Field(default=60.0, ge=0)
    age_scale: float = Field(default=600.0, gt=0)
    age_cap: float = Field(default=4.0, ge=1)
    reserve_seconds: float = Field(default=1.0, ge=0)
    # History: finished jobs kept in memory (the rest are archived on disk), the last this
    # many and only those finished this long before the newest event (park.projections.archive).
    hot_finished_jobs: int = Field(default=10_000, ge=0)
    hot_finished_seconds: float = Field(default=DAY, ge=0)
    max_unit_seconds: float = Field(default=DAY, gt=0)
    # Backup attempts (park.scheduler.backups): a worker with nothing queued to run may
    # run a second attempt of a unit leased longer than `backup_factor` times its job's
    # median unit time (and `backup_min_seconds`), once the job has nothing queued.
    # None: no backups (as every log from before them; `park serve` sets BACKUP_FACTOR).
    backup_factor: float | None = Field(default=None, gt=0)
    backup_min_seconds: float = Field(default=0.25, ge=0)
    # A time-sized lease takes at most this many times as many of a job's units as the
    # job has timed, so a few fast first units do not send most of a heavy-tailed job to
    # one worker in one batch. None: no such bound (logs from before it).
    batch_growth: float | None = Field(default=None, gt=0)
    # A job that becomes runnable enters the fair-share order one stride (1 / its priority's
    # weight) after the current virtual time, as if it had just been served: a stream of
    # new jobs, each entering ahead of the runnable ones, cannot keep an older job waiting
    # for ever. False: it enters at the virtual time itself (logs from before this rule).
    entry_after_stride: bool = False

    @field_validator("weights")
    @classmethod
    def _every_priority_weighs(cls, value: dict[Priority, float]) -> dict[Priority, float]:
        missing = [p.value for p in Priority if p not in value]
        if missing or any(w <= 0 for w in value.values()):
            raise ValueError("every priority needs a positive weight (none may starve)")
        return value

    @field_validator("prices")
    @classmethod
    def _every_priority_priced(cls, value: dict[Priority, float]) -> dict[Priority, float]:
        missing = [p.value for p in Priority if p not in value]
        if missing or any(price < 0 for price in value.values()):
            raise ValueError("every priority needs a price of at least 0")
        return value

    def price(self, priority: Priority) -> float:
        return self.prices[priority]
