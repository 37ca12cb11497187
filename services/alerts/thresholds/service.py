"""Threshold administration: what is in force per scope, and changing one scope safely.

A change is refused (422 naming `body.settings`) when, merged as it would be, it puts lapsed
before at risk, for the scope itself or, for the default, for any scope layered over it.
After a change the pending lapse checks are moved under the new thresholds in the background.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.domain.thresholds import (
    ThresholdBook,
    ThresholdOverrides,
    Thresholds,
    ThresholdScope,
    merged,
)
from services.alerts.lapse.service import reschedule_lapse_checks
from services.alerts.thresholds.repository import stored_overrides
from services.alerts.thresholds.schemas import (
    ScopeKey,
    ThresholdScopeOut,
    ThresholdsOut,
    ThresholdsPut,
    ThresholdValues,
    encode_scopes_cursor,
)
from services.alerts.uow import AlertsUnitOfWork
from shared.errors import Unprocessable

log = logging.getLogger(__name__)


async def thresholds_in_force(
    uow: AlertsUnitOfWork, after: ScopeKey | None = None, limit: int | None = None
) -> ThresholdsOut:
    """The built-in defaults and the stored scopes (default, per category, per merchant):
    every one, or `limit` of them after `after` with the cursor of the rest."""
    book = await uow.thresholds.book()
    rows = await uow.thresholds.scopes(after, None if limit is None else limit + 1)
    last = rows[limit - 1] if limit is not None and len(rows) > limit else None
    scopes = []
    for row in rows[:limit]:
        overrides = stored_overrides(row)
        if overrides is None:
            continue  # out of range (logged): not in force, so not shown as such
        scope = ThresholdScope(row["scope"])
        scopes.append(scope_out(book, scope, row["scope_id"], overrides, row["updated_at"]))
    return ThresholdsOut(
        built_in=threshold_values(Thresholds()),
        scopes=scopes,
        next_cursor=encode_scopes_cursor((last["scope"], last["scope_id"])) if last else None,
    )


async def replace_scope(uow: AlertsUnitOfWork, change: ThresholdsPut) -> ThresholdScopeOut:
    """Replace one scope's overrides if consistent; the caller reschedules the checks."""
    book = await uow.thresholds.book()
    _check_consistent(book, change)
    await uow.thresholds.put(change.scope, change.scope_id or "", change.settings)
    if change.scope is ThresholdScope.DEFAULT:
        book.default = change.settings
    return scope_out(book, change.scope, change.scope_id or "", change.settings)


async def reschedule_after_change(engine: AsyncEngine) -> None:
    """Due times follow the thresholds: recompute them after a change (in the background)."""
    try:
        async with AlertsUnitOfWork.begin(engine, lambda: datetime.now(UTC)) as uow:
            model = await uow.models.latest_params()
        moved = await reschedule_lapse_checks(engine, model)
        log.info("thresholds changed: %d due times moved", moved)
    except Exception:
        log.exception("rescheduling after a threshold change failed; the next refit will")


def threshold_values(thresholds: Thresholds) -> ThresholdValues:
    rules, day = thresholds.rules, 86_400.0
    return ThresholdValues(
        inactivity_window_days=rules.inactivity_window.total_seconds() / day,
        rhythm_multiple=rules.rhythm_multiple,
        rhythm_min_visits=rules.rhythm_min_visits,
        rhythm_max_variation=rules.rhythm_max_variation,
        at_risk_alive_probability=rules.at_risk_alive_probability,
        lapsed_alive_probability=rules.lapsed_alive_probability,
        at_risk_no_purchase_probability=rules.at_risk_no_purchase_probability,
        lapsed_no_purchase_probability=rules.lapsed_no_purchase_probability,
        model_horizon_days=rules.model_horizon.total_seconds() / day,
        enabled_rules=sorted(rule.value for rule in rules.enabled),
        lapsed_multiple=rules.lapsed_multiple,
        follow_up_days=thresholds.follow_up_after.total_seconds() / day,
        risk_horizon_days=thresholds.risk_horizon.total_seconds() / day,
    )


def scope_out(
    book: ThresholdBook,
    scope: ThresholdScope,
    scope_id: str,
    overrides: ThresholdOverrides,
    updated_at: datetime | None = None,
) -> ThresholdScopeOut:
    layers = (overrides,) if scope is ThresholdScope.DEFAULT else (book.default, overrides)
    return ThresholdScopeOut(
        scope=scope,
        scope_id=scope_id or None,
        settings=overrides.model_dump(exclude_none=True),
        effective=threshold_values(merged(*layers)),
        updated_at=updated_at,
    )


def _check_consistent(book: ThresholdBook, change: ThresholdsPut) -> None:
    """Refuse overrides that, merged as they would be, put lapsed before at risk."""
    checks: list[tuple[str, tuple[ThresholdOverrides | None, ...]]]
    if change.scope is ThresholdScope.DEFAULT:
        others = [*book.by_merchant.items(), *book.by_category.items()]
        checks = [("settings", (change.settings,))]
        checks += [(f"scope {name}", (change.settings, other)) for name, other in others]
    else:
        checks = [("settings", (book.default, change.settings))]
    for what, layers in checks:
        try:
            merged(*layers)
        except ValueError as exc:
            raise Unprocessable(
                f"inconsistent thresholds ({what}): {exc}",
                code="validation_failed",
                errors=[
                    {"field": "body.settings", "rule": "thresholds_consistent", "message": str(exc)}
                ],
            ) from exc
