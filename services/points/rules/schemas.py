"""The admin API's view of a rule version, and its conversion to and from the domain rules.

Multipliers and rates are decimal strings (never JSON numbers: 0.1 as a float is not one
tenth); the minimum order and tier spend thresholds are money in the programme currency.
Every value is re-checked by the domain's own validation, whose refusal becomes a 422.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import (
    DEFAULT_TIER_MULTIPLIERS,
    Campaign,
    EarningRuleSet,
    ItemMultiplier,
    ItemScope,
)
from services.points.domain.errors import PointsRuleError
from services.points.domain.programme import ProgrammeRules
from services.points.domain.tiers import Tier, TierPolicy, TierThreshold
from services.points.ledger.schemas import Moment, money_text
from shared.errors import Unprocessable

Factor = Annotated[
    str,
    Field(pattern=r"^[0-9]{1,6}(\.[0-9]{1,6})?$", description="Decimal string", examples=["1.5"]),
]
MoneyText = Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,6})?$", examples=["500.00"])]
Code = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
Key = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@/-]+$")]
Days = Annotated[int, Field(ge=0, le=365)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class InvalidRule(Unprocessable):
    code, title = "invalid_rule", "The rule version cannot be applied as configured"


class ItemMultiplierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: ItemScope
    key: Key
    multiplier: Factor = Field(description="0 excludes the lines (gift cards earn nothing)")


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: Key
    multiplier: Factor
    starts_at: Moment
    ends_at: Moment = Field(description="Excluded")
    merchant_id: Key | None = Field(default=None, description="None: every partner")


class TierThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: Tier
    min_purchases: Count
    min_spend: MoneyText


class TierPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window_months: int = Field(default=12, ge=1, le=120)
    thresholds: list[TierThresholdIn] = Field(min_length=3, max_length=3)


class RuleVersionIn(BaseModel):
    """One complete version of the programme's rules, in force from `effective_from`."""

    model_config = ConfigDict(extra="forbid")
    effective_from: Moment = Field(description="Must be in the future: replays stay stable")
    programme_currency: Code = "EUR"
    currency_rates: dict[Code, Factor] = Field(
        default_factory=dict, description="Programme-currency units per unit of each currency"
    )
    base_rate: Factor = "1"
    merchant_base_rates: dict[Key, Factor] = Field(default_factory=dict)
    tier_multipliers: dict[Tier, Factor] = Field(
        default_factory=lambda: {t: str(m) for t, m in DEFAULT_TIER_MULTIPLIERS.items()}
    )
    item_multipliers: list[ItemMultiplierIn] = Field(default_factory=list, max_length=1000)
    campaigns: list[CampaignIn] = Field(default_factory=list, max_length=200)
    minimum_order: MoneyText = "0"
    daily_cap_points: int | None = Field(default=None, ge=0, le=1_000_000_000)
    return_window_days: Days = 14
    merchant_return_window_days: dict[Key, Days] = Field(default_factory=dict)
    validity_months: int = Field(default=12, ge=1, le=120)
    timezone: str = Field(
        default="UTC", max_length=64, pattern=r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
    )
    tiers: TierPolicyIn | None = Field(default=None, description="None: default thresholds")


class RuleVersionOut(RuleVersionIn):
    id: int
    created_by: str = Field(description="The API key that created the version")
    recorded_at: datetime
    updated_by: str | None = Field(
        description="The API key that last edited the version; null if never edited"
    )
    updated_at: datetime | None = Field(
        description="When the version was last edited; null if never edited"
    )


class RuleEditOut(RuleVersionIn):
    """The content one edit replaced (as it was before the edit), who edited it and when."""

    edited_by: str = Field(description="The API key that made the edit")
    edited_at: datetime


def _minor(text: str, exponent: int, what: str) -> int:
    scaled = Decimal(text).scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise InvalidRule(f"{what}: more decimals than the programme currency allows", field=what)
    return int(scaled)


def to_rules(body: RuleVersionIn) -> ProgrammeRules:
    """The domain rules the body describes; a rule the domain refuses is a 422 naming it."""
    try:
        rates = CurrencyRates(
            programme_currency=body.programme_currency,
            rates={code: Decimal(rate) for code, rate in body.currency_rates.items()},
        )
        exponent = rates.exponent(body.programme_currency)
        earning = EarningRuleSet(
            effective_from=body.effective_from,
            currency_rates=rates,
            base_rate=Decimal(body.base_rate),
            merchant_base_rates={m: Decimal(r) for m, r in body.merchant_base_rates.items()},
            tier_multipliers={t: Decimal(m) for t, m in body.tier_multipliers.items()},
            item_multipliers=tuple(
                ItemMultiplier(i.scope, i.key, Decimal(i.multiplier)) for i in body.item_multipliers
            ),
            campaigns=tuple(
                Campaign(
                    c.campaign_id, Decimal(c.multiplier), c.starts_at, c.ends_at, c.merchant_id
                )
                for c in body.campaigns
            ),
            minimum_order_minor=_minor(body.minimum_order, exponent, "minimum_order"),
            daily_cap_points=body.daily_cap_points,
            return_window_days=body.return_window_days,
            merchant_return_window_days=dict(body.merchant_return_window_days),
            validity_months=body.validity_months,
            timezone=body.timezone,
        )
        tiers = _tier_policy(body.tiers, exponent) if body.tiers else TierPolicy()
    except PointsRuleError as error:
        raise InvalidRule(str(error), rule=error.code) from error
    return ProgrammeRules(earning=earning, tiers=tiers)


def _tier_policy(policy: TierPolicyIn, exponent: int) -> TierPolicy:
    return TierPolicy(
        thresholds=tuple(
            TierThreshold(
                t.tier,
                t.min_purchases,
                _minor(t.min_spend, exponent, f"tiers.thresholds.{t.tier.value}.min_spend"),
            )
            for t in policy.thresholds
        ),
        window_months=policy.window_months,
    )


def to_body(rules: ProgrammeRules) -> RuleVersionIn:
    """The API document of stored rules (what `to_rules` would turn back into them)."""
    earning, tiers = rules.earning, rules.tiers
    currency = earning.currency_rates.programme_currency
    exponent = earning.currency_rates.exponent(currency)
    return RuleVersionIn(
        effective_from=earning.effective_from,
        programme_currency=currency,
        currency_rates={c: str(r) for c, r in earning.currency_rates.rates.items()},
        base_rate=str(earning.base_rate),
        merchant_base_rates={m: str(r) for m, r in earning.merchant_base_rates.items()},
        tier_multipliers={t: str(m) for t, m in earning.tier_multipliers.items()},
        item_multipliers=[
            ItemMultiplierIn(scope=i.scope, key=i.key, multiplier=str(i.multiplier))
            for i in earning.item_multipliers
        ],
        campaigns=[
            CampaignIn(
                campaign_id=c.campaign_id,
                multiplier=str(c.multiplier),
                starts_at=c.starts_at,
                ends_at=c.ends_at,
                merchant_id=c.merchant_id,
            )
            for c in earning.campaigns
        ],
        minimum_order=money_text(earning.minimum_order_minor, exponent),
        daily_cap_points=earning.daily_cap_points,
        return_window_days=earning.return_window_days,
        merchant_return_window_days=dict(earning.merchant_return_window_days),
        validity_months=earning.validity_months,
        timezone=earning.timezone,
        tiers=TierPolicyIn(
            window_months=tiers.window_months,
            thresholds=[
                TierThresholdIn(
                    tier=t.tier,
                    min_purchases=t.min_purchases,
                    min_spend=money_text(t.min_spend_minor, exponent),
                )
                for t in tiers.thresholds
            ],
        ),
    )
