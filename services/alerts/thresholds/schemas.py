"""Bodies of the threshold administration: the scopes stored, what is in force, a change."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.alerts.domain.thresholds import ThresholdOverrides, ThresholdScope
from services.alerts.lapse.schemas import ResponseModel
from shared.contracts.fields import Identifier
from shared.errors import Unprocessable


class ThresholdValues(ResponseModel):
    """Thresholds in force after merging default <- category <- merchant."""

    inactivity_window_days: float
    rhythm_multiple: float
    rhythm_min_visits: int
    rhythm_max_variation: float = Field(
        description="Own rhythm only for gaps this regular (standard deviation / mean)."
    )
    at_risk_alive_probability: float = Field(description="Diagnostic only: P(alive) never alerts.")
    lapsed_alive_probability: float
    at_risk_no_purchase_probability: float
    lapsed_no_purchase_probability: float
    model_horizon_days: float
    enabled_rules: list[str]
    lapsed_multiple: float
    follow_up_days: float
    risk_horizon_days: float


class ThresholdScopeOut(ResponseModel):
    scope: ThresholdScope
    scope_id: str | None
    settings: dict[str, bool | int | float] = Field(
        description="Only what this scope changes (absent: inherited).",
        examples=[{"inactivity_window_days": 30}],
    )
    effective: ThresholdValues = Field(description="This scope merged over the default.")
    updated_at: datetime | None = None


class ThresholdsOut(ResponseModel):
    built_in: ThresholdValues
    scopes: list[ThresholdScopeOut]
    next_cursor: str | None = Field(
        default=None,
        description="With `limit`: pass as `cursor` for the next scopes; null on the last page"
        " (and always without `limit`, which lists every scope).",
    )


class ThresholdsPut(BaseModel):
    """Replace what one scope overrides (send `{}` as settings to inherit everything)."""

    model_config = ConfigDict(extra="forbid")

    scope: ThresholdScope
    scope_id: Identifier | None = Field(
        default=None, description="The merchant or category id; absent for the default scope."
    )
    settings: ThresholdOverrides

    @model_validator(mode="after")
    def _scope_id_matches_scope(self) -> ThresholdsPut:
        if self.scope is ThresholdScope.DEFAULT and self.scope_id is not None:
            raise ValueError("the default scope takes no scope_id")
        if self.scope is not ThresholdScope.DEFAULT and self.scope_id is None:
            raise ValueError(f"a {self.scope.value} scope needs its scope_id")
        return self


_CURSOR_PREFIX = "thr1:"

ScopeKey = tuple[str, str]  # (scope, scope_id): the order scopes are listed in


def encode_scopes_cursor(after: ScopeKey) -> str:
    text = f"{_CURSOR_PREFIX}{after[0]}:{after[1]}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_scopes_cursor(cursor: str) -> ScopeKey:
    """The scope a cursor resumes after; a 422 naming `cursor` when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeError, binascii.Error):
        text = ""
    scope, separator, scope_id = text.removeprefix(_CURSOR_PREFIX).partition(":")
    if not text.startswith(_CURSOR_PREFIX) or not separator or not scope:
        raise Unprocessable(
            "cursor is not a cursor this API returned",
            code="validation_failed",
            errors=[
                {
                    "field": "query.cursor",
                    "rule": "cursor_invalid",
                    "message": "pass next_cursor from a previous page unchanged",
                }
            ],
        )
    return scope, scope_id
