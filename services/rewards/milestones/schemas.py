"""Milestone-rule bodies (admin)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from services.rewards.vouchers.schemas import NEXT_CURSOR, Body, View
from shared.contracts.fields import Identifier


class MilestoneDocument(Body):
    kind: str = Field(pattern="^(every_lifetime_points|tier_reached)$")
    every_points: Annotated[int, Field(gt=0, le=1_000_000_000)] | None = None
    tier: str | None = Field(default=None, pattern="^(member|silver|gold|platinum)$")
    grant_reward_code: Identifier | None = None
    grant_points: Annotated[int, Field(gt=0, le=100_000_000)] | None = None
    active: bool = True


class MilestoneRuleView(View):
    rule_key: str
    kind: str
    every_points: int | None
    tier: str | None
    grant_reward_code: str | None
    grant_points: int | None
    active: bool


class MilestoneRules(View):
    rules: list[MilestoneRuleView]
    next_cursor: str | None = Field(description=NEXT_CURSOR)
