"""Catalogue items as admins create and change them, and as the claim rules read them.

A change may not leave fewer units (or less budget) than claims already hold: the check
runs on the locked item row before anything is written (claims lock the same row), so it
answers 409 problem+json naming the field instead of the database's CHECK failing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from services.rewards.domain.catalogue import CatalogueItem, supply_below_claimed
from services.rewards.domain.errors import RewardsRuleError
from shared.errors import Conflict, NotFound, Unprocessable

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork


class ItemNotFound(NotFound):
    code, title = "catalogue_item_not_found", "No such catalogue item"


class SupplyBelowClaimed(Conflict):
    code, title = "stock_below_claimed", "Less stock or budget than units already claimed"


def item_from_row(row: Any) -> CatalogueItem:
    return CatalogueItem(
        item_id=row.item_id,
        reward_code=row.reward_code,
        points_cost=row.points_cost,
        claimable_from=row.claimable_from,
        claimable_until=row.claimable_until,
        voucher_valid_for=timedelta(days=row.voucher_valid_days),
        total_stock=row.total_stock,
        budget_minor=row.budget_minor,
        unit_cost_minor=row.unit_cost_minor,
        per_customer_limit=row.per_customer_limit,
        eligible_tiers=frozenset(row.eligible_tiers),
        merchant_id=row.merchant_id,
    )


async def save_item(uow: RewardsUnitOfWork, values: dict[str, Any]) -> Any:
    """Create or change a catalogue item; refuses an inconsistent item (422), and stock or a
    budget below what claims already hold (409, before any write). Returns the stored row."""
    try:
        item_from_row(type("Row", (), values))
    except RewardsRuleError as error:
        raise Unprocessable(str(error), code="catalogue_item_invalid") from error
    current = await uow.catalogue.units_claimed(values["item_id"])
    problem = supply_below_claimed(
        current, values["total_stock"], values["budget_minor"], values["unit_cost_minor"]
    )
    if problem is not None:
        field, explanation = problem
        raise SupplyBelowClaimed(explanation, field=field, units_claimed=current)
    return await uow.catalogue.save(values)
