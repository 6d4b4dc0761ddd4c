"""`/v1/ledger` and `/v1/policy`: credits and usage per user, budgets, the price table."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from park.api.access import Rules, Service, Who
from park.api.history import day_range, days_json
from park.api.schemas import SetBudget, ledger_json
from park.errors import NotFound
from park.scheduler.explain import price_table
from park.service.history import usage_by_day

router = APIRouter()


@router.get("/v1/ledger")
async def ledger(
    service: Service,
    who: Who,
    first: str | None = Query(default=None, alias="from", description="first day (ISO)"),
    last: str | None = Query(default=None, alias="to", description="last day (ISO)"),
) -> dict[str, Any]:
    """Totals per user; with `from`/`to`, also usage per user per day (`days`)."""
    answer = ledger_json(service.state, service.clock())
    if first is not None or last is not None:
        start, end = day_range(first, last, service.clock())
        answer["days"] = days_json(usage_by_day(service.state, service.archive, start, end))
    return answer


@router.get("/v1/ledger/{user}")
async def ledger_of(user: str, service: Service, who: Who) -> dict[str, Any]:
    answer = ledger_json(service.state, service.clock(), user)
    if user not in answer["users"]:
        raise NotFound(f"user: nothing recorded for user {user!r}", field="user")
    return answer


@router.put("/v1/ledger/{user}/budget")
async def set_budget(
    user: str, body: SetBudget, service: Service, access: Rules, who: Who
) -> dict[str, Any]:
    access.require_admin(who, "setting a budget")
    await service.set_budget(user, body.credits)
    return ledger_json(service.state, service.clock(), user)


@router.get("/v1/policy")
async def policy(service: Service, who: Who) -> dict[str, Any]:
    return {
        "priorities": price_table(service.state),
        "config": service.state.policy.model_dump(mode="json"),
    }
