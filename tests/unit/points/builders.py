"""Small builders so each test states only the business facts it is about."""

from __future__ import annotations

from datetime import UTC, datetime

from services.points.domain.earning import OrderLine, Purchase


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A UTC moment (every domain moment must be timezone-aware)."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def line(
    price_minor: int, quantity: int = 1, sku: str = "sku-1", category: str | None = None
) -> OrderLine:
    return OrderLine(sku=sku, quantity=quantity, unit_price_minor=price_minor, category=category)


def purchase(
    *lines: OrderLine,
    merchant_id: str = "merchant-a",
    occurred_at: datetime | None = None,
    currency: str = "EUR",
    order_id: str = "order-1",
) -> Purchase:
    return Purchase(
        order_id=order_id,
        merchant_id=merchant_id,
        occurred_at=occurred_at or at(2025, 3, 5),
        currency=currency,
        lines=tuple(lines),
    )
