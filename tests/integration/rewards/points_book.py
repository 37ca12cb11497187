"""A customer's points as the points service publishes them, for the rewards tests: orders
accrue pending points, returns within the window take them back, and the end of the window
settles what stayed (`points.settled`, with the customer's settled totals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.integration.rewards.helpers import NOW, RESTAURANT, envelope


@dataclass
class _Order:
    points: int
    returned: int = 0
    settled: bool = False

    @property
    def kept(self) -> int:
        return self.points - self.returned

    @property
    def fully_returned(self) -> bool:
        """Every unit came back (an order that earned nothing and was kept is a purchase)."""
        return self.points > 0 and self.kept == 0


@dataclass
class PointsBook:
    """One customer's account; each method returns the event the points service would emit."""

    customer: str
    merchant: str = RESTAURANT
    tier: str = "member"
    available: int = 0
    pending: int = 0
    lifetime: int = 0
    purchases: int = 0
    settled_points: int = 0
    settled_purchases: int = 0
    first_settled_seen: bool = False
    orders: dict[str, _Order] = field(default_factory=dict)
    clock: datetime = NOW - timedelta(days=60)

    def _snapshot(self, first_purchase: bool = False) -> dict[str, Any]:
        return {
            "available": self.available,
            "pending": self.pending,
            "debt": 0,
            "lifetime_earned": self.lifetime,
            "purchase_count": self.purchases,
            "first_purchase": first_purchase,
            "tier": self.tier,
        }

    def _event(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        self.clock += timedelta(minutes=1)
        return envelope(event_type, self.customer, self.clock, data)

    def buy(self, order_id: str, points: int) -> dict[str, Any]:
        self.orders[order_id] = _Order(points)
        self.purchases += 1
        self.pending += points
        self.lifetime += points
        data = {
            **self._snapshot(first_purchase=self.purchases == 1),
            "order_id": order_id,
            "merchant_id": self.merchant,
            "points": points,
        }
        return self._event("points.accrued", data)

    def give_back(self, order_id: str, points: int) -> dict[str, Any]:
        """A return within the window (`points` > 0, at most what the order still holds)."""
        order = self.orders[order_id]
        assert not order.settled and 0 < points <= order.kept, "not a return the points side takes"
        order.returned += points
        self.pending -= points
        self.lifetime -= points
        data = {
            **self._snapshot(),
            "order_id": order_id,
            "return_id": f"{order_id}-r{order.returned}",
            "merchant_id": self.merchant,
            "points": points,
            "order_points_reversed": order.returned,
        }
        return self._event("points.reversed", data)

    def settle(self, order_id: str) -> dict[str, Any]:
        order = self.orders[order_id]
        assert not order.settled, "an order settles once"
        order.settled = True
        fully_returned = order.fully_returned
        self.pending -= order.kept
        self.available += order.kept
        self.settled_points += order.kept
        first = False
        if not fully_returned:
            self.settled_purchases += 1
            first = not self.first_settled_seen
            self.first_settled_seen = True
        data = {
            **self._snapshot(),
            "order_id": order_id,
            "merchant_id": self.merchant,
            "points": order.kept,
            "amount": f"{order.kept}.00",
            "currency": "EUR",
            "fully_returned": fully_returned,
            "settled_lifetime_points": self.settled_points,
            "settled_purchase_count": self.settled_purchases,
            "first_settled_purchase": first,
        }
        return self._event("points.settled", data)

    def move_tier(self, tier: str) -> dict[str, Any]:
        previous, self.tier = self.tier, tier
        data = {
            **self._snapshot(),
            "previous_tier": previous,
            "reason": "qualified",
            "qualifying_purchases": self.settled_purchases,
            "qualifying_spend": "0.00",
            "currency": "EUR",
        }
        return self._event("tier.changed", data)

    def debit(self, claim_id: str, points: int, redemption_id: str) -> dict[str, Any]:
        """The saga's debit for a catalogue claim (`points.debited`)."""
        self.available -= points
        data = {
            **self._snapshot(),
            "debit_id": claim_id,
            "redemption_id": redemption_id,
            "merchant_id": "rewards",
            "points": points,
        }
        return self._event("points.debited", data)

    def cancel_redemption(
        self, redemption_id: str, points: int, merchant: str = "rewards"
    ) -> dict[str, Any]:
        """`POST /v1/redemptions/{id}/cancel` as the points service reports it."""
        self.available += points
        data = {
            **self._snapshot(),
            "redemption_id": redemption_id,
            "merchant_id": merchant,
            "points": points,
        }
        return self._event("points.redemption_cancelled", data)
