"""Alert thresholds as data: a default, overridden per category, overridden per merchant.

Each scope stores only what it changes (a partial JSON document), so a merchant that only
shortens the inactivity window keeps every other default. Layers merge field by field:
default <- category <- merchant. A customer is judged by the thresholds of their home merchant
(where they spend most, net) and their main category (where most of their item spend went).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.alerts.domain.lapse import LapseRule, LapseRules

log = logging.getLogger(__name__)

DEFAULT_FOLLOW_UP_DAYS = 7
DEFAULT_RISK_HORIZON_DAYS = 90


class ThresholdScope(StrEnum):
    DEFAULT = "default"
    MERCHANT = "merchant"
    CATEGORY = "category"


# Probabilities are kept off 0 and 1 by a margin: a threshold of 1e-300 is not a policy, and
# its log-odds put due dates beyond any calendar (the crash of issue 15).
_P_MIN, _P_MAX = 0.001, 0.999


class ThresholdOverrides(BaseModel):
    """What one scope changes; absent fields inherit from the wider scope. Every field has a
    range (422 names it), and stored documents are re-checked against it when loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inactivity_window_days: int | None = Field(default=None, ge=1, le=3650)
    rhythm_multiple: float | None = Field(default=None, ge=0.5, le=100)
    rhythm_min_visits: int | None = Field(default=None, ge=3, le=1000)
    rhythm_max_variation: float | None = Field(default=None, ge=0, le=10)
    at_risk_alive_probability: float | None = Field(default=None, ge=_P_MIN, le=_P_MAX)
    lapsed_alive_probability: float | None = Field(default=None, ge=_P_MIN, le=_P_MAX)
    at_risk_no_purchase_probability: float | None = Field(default=None, ge=_P_MIN, le=_P_MAX)
    lapsed_no_purchase_probability: float | None = Field(default=None, ge=_P_MIN, le=_P_MAX)
    model_horizon_days: int | None = Field(default=None, ge=1, le=3650)
    lapsed_multiple: float | None = Field(default=None, ge=1, le=100)
    follow_up_days: int | None = Field(default=None, ge=1, le=365)
    risk_horizon_days: int | None = Field(default=None, ge=1, le=3650)
    inactivity_enabled: bool | None = None
    own_rhythm_enabled: bool | None = None
    no_purchase_probability_enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Everything the service needs to judge one customer."""

    rules: LapseRules = field(default_factory=LapseRules)
    follow_up_after: timedelta = timedelta(days=DEFAULT_FOLLOW_UP_DAYS)
    risk_horizon: timedelta = timedelta(days=DEFAULT_RISK_HORIZON_DAYS)


def merged(*layers: ThresholdOverrides | None) -> Thresholds:
    """Thresholds from the built-in defaults and `layers`, later layers winning.

    Raises ValueError when the combination is inconsistent (lapsed before at risk).
    """
    values: dict[str, Any] = {}
    for layer in layers:
        if layer is not None:
            values.update(layer.model_dump(exclude_none=True))
    defaults = LapseRules()
    switches = {
        LapseRule.INACTIVITY: "inactivity_enabled",
        LapseRule.OWN_RHYTHM: "own_rhythm_enabled",
        LapseRule.NO_PURCHASE_PROBABILITY: "no_purchase_probability_enabled",
    }
    enabled = frozenset(
        rule for rule, name in switches.items() if values.get(name, rule in defaults.enabled)
    )
    rules = LapseRules(
        inactivity_window=timedelta(
            days=values.get("inactivity_window_days", defaults.inactivity_window.days)
        ),
        rhythm_multiple=values.get("rhythm_multiple", defaults.rhythm_multiple),
        rhythm_min_visits=values.get("rhythm_min_visits", defaults.rhythm_min_visits),
        rhythm_max_variation=values.get("rhythm_max_variation", defaults.rhythm_max_variation),
        at_risk_alive_probability=values.get(
            "at_risk_alive_probability", defaults.at_risk_alive_probability
        ),
        lapsed_alive_probability=values.get(
            "lapsed_alive_probability", defaults.lapsed_alive_probability
        ),
        lapsed_multiple=values.get("lapsed_multiple", defaults.lapsed_multiple),
        at_risk_no_purchase_probability=values.get(
            "at_risk_no_purchase_probability", defaults.at_risk_no_purchase_probability
        ),
        lapsed_no_purchase_probability=values.get(
            "lapsed_no_purchase_probability", defaults.lapsed_no_purchase_probability
        ),
        model_horizon=timedelta(days=values.get("model_horizon_days", defaults.model_horizon.days)),
        enabled=enabled,
    )
    return Thresholds(
        rules=rules,
        follow_up_after=timedelta(days=values.get("follow_up_days", DEFAULT_FOLLOW_UP_DAYS)),
        risk_horizon=timedelta(days=values.get("risk_horizon_days", DEFAULT_RISK_HORIZON_DAYS)),
    )


@dataclass
class ThresholdBook:
    """Every stored scope, loaded once per batch; answers per merchant and category."""

    default: ThresholdOverrides | None = None
    by_merchant: dict[str, ThresholdOverrides] = field(default_factory=dict)
    by_category: dict[str, ThresholdOverrides] = field(default_factory=dict)
    _cache: dict[tuple[str | None, str | None], Thresholds] = field(default_factory=dict)

    def for_customer(self, merchant_id: str | None, category: str | None) -> Thresholds:
        key = (merchant_id, category)
        if key not in self._cache:
            self._cache[key] = self._resolve(merchant_id, category)
        return self._cache[key]

    def _resolve(self, merchant_id: str | None, category: str | None) -> Thresholds:
        merchant = self.by_merchant.get(merchant_id) if merchant_id else None
        by_category = self.by_category.get(category) if category else None
        # Each scope was checked against the default when stored, but a category and a
        # merchant override together can still contradict; the merchant's own word wins.
        for layers in (
            (self.default, by_category, merchant),
            (self.default, merchant),
            (self.default, by_category),
            (self.default,),
        ):
            try:
                return merged(*layers)
            except ValueError as exc:
                log.warning("thresholds for %s/%s inconsistent: %s", merchant_id, category, exc)
        return Thresholds()
