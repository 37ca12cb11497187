"""Admin routes under /v1/admin/ (scope `admin`): policies and limits, catalogue,
milestone rules, manual review, budgets and overdue-claims reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.dialects import postgresql as pg

from services.rewards.api import clock, delivery, engine
from services.rewards.catalogue import item_from_row
from services.rewards.catalogue_items import save_item
from services.rewards.claims import (
    decide_compensation,
    key_name,
    overdue_claims,
    reject_waiting_claim,
    review_queue,
)
from services.rewards.compensation import merchant_month_money, merchant_month_spend
from services.rewards.db import (
    catalogue_items,
    compensations,
    guarantee_policies,
    merchant_limits,
    milestone_rules,
)
from services.rewards.domain.errors import RewardsRuleError
from services.rewards.domain.guarantee_limits import CompensationLimits, budget_month
from services.rewards.invariants import invariant_names, invariant_violations
from services.rewards.milestones import LADDER, rule_from_row
from services.rewards.policies import (
    DEFAULT_LIMITS_MERCHANT,
    load_limits_of,
    policy_from_document,
    save_limits,
    save_policy,
)
from shared.auth import ApiPrincipal
from shared.contracts.fields import Identifier
from shared.errors import Unprocessable
from shared.http.security import require_programme_admin
from shared.outbox import OutboxWriter

# Every rewards admin route spans the programme (any merchant's policies, caps and held
# compensations, the catalogue, the referral programme), as the points service's do.
programme_admin = require_programme_admin(
    "rewards admin routes span every merchant of the programme; a key bound to "
    "merchant {merchant} may not use them"
)
Admin = Annotated[ApiPrincipal, Depends(programme_admin)]
Key = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@/-]+$")]
Count = Annotated[int, Field(ge=0, le=1_000_000_000_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TierDocument(_Body):
    over: Annotated[int, Field(ge=0, le=1_000_000)]
    vouchers: list[Identifier] = Field(default_factory=list, max_length=20)
    points: Annotated[int, Field(gt=0, le=100_000_000)] | None = None
    refund_basis_points: Annotated[int, Field(gt=0, le=1_000_000)] | None = None


class PolicyDocument(_Body):
    unit: str = Field(pattern="^(minutes|seconds|breach)$")
    tiers: list[TierDocument] = Field(min_length=1, max_length=20)
    claim_window_days: Annotated[int, Field(ge=1, le=365)] = 7
    # The highest tier a customer's own report reaches without an incident or a person.
    self_reported_max_tier: Annotated[int, Field(ge=0, le=20)] = 1


class LimitsDocument(_Body):
    customer_refund_cap_minor: Count | None = None
    customer_breach_cap: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    merchant_monthly_budget_minor: Count | None = None
    customer_points_cap: Count | None = None
    merchant_monthly_points_budget: Count | None = None


class ItemDocument(_Body):
    reward_code: Identifier
    title: str = Field(min_length=1, max_length=200)
    points_cost: Annotated[int, Field(gt=0, le=100_000_000)]
    claimable_from: AwareDatetime
    claimable_until: AwareDatetime
    voucher_valid_days: Annotated[int, Field(ge=1, le=3650)]
    total_stock: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    budget_minor: Count | None = None
    unit_cost_minor: Count = 0
    per_customer_limit: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    eligible_tiers: list[str] = Field(default_factory=list, max_length=4)
    merchant_id: Identifier | None = None

    @field_validator("claimable_from", "claimable_until")
    @classmethod
    def _storable(cls, moment: datetime) -> datetime:
        # PostgreSQL and asyncpg cannot hold every instant Python can (year 1 minus an offset).
        if not 2000 <= moment.astimezone(UTC).year <= 9000:
            raise ValueError("must be between the years 2000 and 9000")
        return moment


class MilestoneDocument(_Body):
    kind: str = Field(pattern="^(every_lifetime_points|tier_reached)$")
    every_points: Annotated[int, Field(gt=0, le=1_000_000_000)] | None = None
    tier: str | None = Field(default=None, pattern="^(member|silver|gold|platinum)$")
    grant_reward_code: Identifier | None = None
    grant_points: Annotated[int, Field(gt=0, le=100_000_000)] | None = None
    active: bool = True


class Decision(_Body):
    """The reviewer's note. Who decided is the API key's name, never what the body says;
    `actor` is still accepted (older consoles send it) and kept as the note."""

    note: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"^[^\x00]*$")
    actor: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\x00]*$")

    @property
    def text(self) -> str | None:
        return self.note or self.actor


router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/policies", summary="Every guarantee policy")
async def policies(request: Request, _: Admin) -> dict[str, Any]:
    async with engine(request).connect() as conn:
        rows = await conn.execute(
            sa.select(guarantee_policies).order_by("merchant_id", "promise_kind")
        )
        return {"policies": [dict(r._mapping) for r in rows]}


@router.put("/policies/{merchant_id}/{promise_kind}", summary="Create or replace a policy")
async def put_policy(
    request: Request, merchant_id: Key, promise_kind: Key, body: PolicyDocument, _: Admin
) -> dict[str, Any]:
    tiers = [t.model_dump(exclude_none=True) for t in body.tiers]
    policy = policy_from_document(
        merchant_id,
        promise_kind,
        body.unit,
        tiers,
        body.claim_window_days,
        body.self_reported_max_tier,
    )
    async with engine(request).begin() as conn:
        await save_policy(conn, policy)
    return {"merchant_id": merchant_id, "promise_kind": promise_kind, **body.model_dump()}


@router.put("/limits/{merchant_id}", summary="Compensation caps of a merchant ('*': default)")
async def put_limits(
    request: Request, merchant_id: Key, body: LimitsDocument, _: Admin
) -> dict[str, Any]:
    limits = CompensationLimits(**body.model_dump())
    async with engine(request).begin() as conn:
        await save_limits(conn, merchant_id, limits)
    return {"merchant_id": merchant_id, **body.model_dump()}


@router.get("/catalogue", summary="Every catalogue item, claimable or not")
async def all_items(request: Request, _: Admin) -> dict[str, Any]:
    async with engine(request).connect() as conn:
        rows = await conn.execute(sa.select(catalogue_items).order_by("item_id"))
        return {"items": [{**r._mapping, "eligible_tiers": list(r.eligible_tiers)} for r in rows]}


@router.put("/catalogue/{item_id}", summary="Create or change a catalogue item")
async def put_item(request: Request, item_id: Key, body: ItemDocument, _: Admin) -> dict[str, Any]:
    values = {"item_id": item_id, **body.model_dump()}
    try:
        item_from_row(type("Row", (), {**values, "voucher_valid_days": body.voucher_valid_days}))
    except RewardsRuleError as error:
        raise Unprocessable(str(error), code="catalogue_item_invalid") from error
    async with engine(request).begin() as conn:
        row = await save_item(conn, values)
    return {**row._mapping, "eligible_tiers": list(row.eligible_tiers)}


@router.get("/milestone-rules", summary="Every milestone rule")
async def milestone_list(request: Request, _: Admin) -> dict[str, Any]:
    async with engine(request).connect() as conn:
        rows = await conn.execute(sa.select(milestone_rules).order_by("rule_key"))
        return {"rules": [dict(r._mapping) for r in rows]}


@router.put("/milestone-rules/{rule_key}", summary="Create or change a milestone rule")
async def put_milestone(
    request: Request, rule_key: Key, body: MilestoneDocument, _: Admin
) -> dict[str, Any]:
    values = {"rule_key": rule_key, **body.model_dump()}
    shape_ok = (body.kind == "every_lifetime_points") == (body.every_points is not None) and (
        body.kind == "tier_reached"
    ) == (body.tier is not None)
    if not shape_ok or (body.grant_reward_code is None) == (body.grant_points is None):
        raise Unprocessable(
            "every_lifetime_points needs every_points, tier_reached needs tier; "
            "and exactly one of grant_reward_code, grant_points",
            code="milestone_rule_invalid",
        )
    try:
        rule_from_row(type("Row", (), values))
        if body.tier:
            LADDER.rank(body.tier)
    except RewardsRuleError as error:
        raise Unprocessable(str(error), code="milestone_rule_invalid") from error
    statement = pg.insert(milestone_rules).values(**values)
    async with engine(request).begin() as conn:
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["rule_key"],
                set_={k: statement.excluded[k] for k in values if k != "rule_key"},
            )
        )
    return values


@router.get("/reviews", summary="Compensations waiting for a person's decision")
async def reviews(request: Request, _: Admin) -> dict[str, Any]:
    async with engine(request).connect() as conn:
        return {"reviews": await review_queue(conn)}


async def _decide(
    request: Request,
    compensation_id: uuid.UUID,
    approve: bool,
    principal: ApiPrincipal,
    note: str | None,
) -> dict[str, Any]:
    outbox = OutboxWriter()
    async with engine(request).begin() as conn:
        actor = await key_name(conn, principal)
        view = await decide_compensation(
            conn,
            delivery(request, outbox),
            compensation_id,
            approve,
            actor,
            clock(request)(),
            note=note,
        )
        await outbox.flush(conn)
    return view


@router.post("/reviews/{compensation_id}/approve", summary="Approve and pay a held compensation")
async def approve(
    request: Request, compensation_id: uuid.UUID, body: Decision, principal: Admin
) -> dict[str, Any]:
    return await _decide(request, compensation_id, True, principal, body.text)


@router.post("/reviews/{compensation_id}/reject", summary="Reject a held compensation")
async def reject(
    request: Request, compensation_id: uuid.UUID, body: Decision, principal: Admin
) -> dict[str, Any]:
    return await _decide(request, compensation_id, False, principal, body.text)


@router.post(
    "/guarantee-claims/{claim_id}/reject",
    summary="Close a guarantee claim still waiting for an order that was never recorded",
)
async def reject_claim(
    request: Request, claim_id: uuid.UUID, body: Decision, principal: Admin
) -> dict[str, Any]:
    async with engine(request).begin() as conn:
        actor = await key_name(conn, principal)
        return await reject_waiting_claim(conn, claim_id, actor, body.text, clock(request)())


@router.get("/reports/budgets", summary="Each merchant's compensation spend this month")
async def budgets(request: Request, _: Admin) -> dict[str, Any]:
    now = clock(request)()
    start, end = budget_month(now)
    async with engine(request).connect() as conn:
        merchants = sorted(
            set((await conn.execute(sa.select(compensations.c.merchant_id).distinct())).scalars())
            | set((await conn.execute(sa.select(merchant_limits.c.merchant_id))).scalars())
        )
        merchants = [m for m in merchants if m != DEFAULT_LIMITS_MERCHANT]
        effective = await load_limits_of(conn, set(merchants))
        report = []
        for merchant_id in merchants:
            held = await conn.scalar(
                sa.select(sa.func.count()).where(
                    compensations.c.merchant_id == merchant_id,
                    compensations.c.status == "in_review",
                )
            )
            refunded = await merchant_month_spend(conn, merchant_id, now)
            money = await merchant_month_money(conn, merchant_id, now)
            budget = effective[merchant_id].merchant_monthly_budget_minor  # default if unset
            report.append(_budget_line(merchant_id, refunded, money, budget, int(held or 0)))
    return {"month_start": start, "month_end": end, "merchants": report}


def _budget_line(
    merchant_id: str, refunded: int, spent: int, budget: int | None, held: int
) -> dict[str, Any]:
    """`spent_minor` is what the budget counts: refunds plus the value of vouchers."""
    return {
        "merchant_id": merchant_id,
        "refunded_minor": refunded,
        "spent_minor": spent,
        "budget_minor": budget,
        "remaining_minor": None if budget is None else budget - spent,
        "held_for_review": held,
    }


@router.get("/reports/overdue-claims", summary="Guarantee claims undecided after 24 hours")
async def overdue(request: Request, _: Admin) -> dict[str, Any]:
    now: datetime = clock(request)()
    async with engine(request).connect() as conn:
        claims = await overdue_claims(conn, now)
    return {
        "as_of": now,
        "deadline_hours": int(timedelta(hours=24).total_seconds() // 3600),
        "claims": claims,
    }


@router.get(
    "/invariants",
    summary="Rows that break what must always hold (empty when the books are sound)",
)
async def invariants(request: Request, _: Admin) -> dict[str, Any]:
    now: datetime = clock(request)()
    async with engine(request).connect() as conn:
        found = await invariant_violations(conn, now)
    return {
        "ok": not found,
        "as_of": now,
        "checked": invariant_names(),
        "violations": [
            {"invariant": v.invariant, "subject": v.subject, "detail": v.detail} for v in found
        ],
    }
