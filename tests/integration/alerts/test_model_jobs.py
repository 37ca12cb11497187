"""The periodic jobs: the BG/NBD refit from stored summaries, and value-segment ranking."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from services.alerts.activity.repository import ActivityRepository
from services.alerts.clock.service import FixedClock
from services.alerts.domain.activity import ActivitySummary, apply_purchase
from services.alerts.domain.lapse import LapseRules
from services.alerts.domain.records import CustomerActivity
from services.alerts.domain.schedule import next_lapse_check
from services.alerts.lapse.service import AlertScanner
from services.alerts.model.repository import ModelRepository
from services.alerts.model.service import refit_model
from services.alerts.segments.service import refresh_segments
from shared.db import create_engine
from tests.integration.alerts.conftest import day

pytestmark = pytest.mark.integration

END = day(52 * 7)
ORDER_MINOR = 2_000
TRUE_MEAN_WEEKLY_RATE = 0.5  # gamma(r=1.5, alpha=3 weeks): 0.5 purchases a week on average


def _simulated_customers(count: int, seed: int = 7) -> list[CustomerActivity]:
    """Customers who buy as BG/NBD assumes: Poisson while alive, leaving after a purchase."""
    rng = np.random.default_rng(seed)
    customers = []
    for index in range(count):
        rate, leave = rng.gamma(1.5, 1 / 3.0), rng.beta(1.0, 3.0)
        moment = day(float(rng.uniform(0, 28)))
        summary = ActivitySummary()
        while moment < END:
            summary = apply_purchase(summary, moment, ORDER_MINOR, "m1")
            if rng.random() < leave:
                break
            moment += timedelta(weeks=float(rng.exponential(1 / rate)))
        customers.append(_activity(f"sim-{index}", summary))
    return customers


def _activity(customer: str, summary: ActivitySummary) -> CustomerActivity:
    return CustomerActivity(
        customer,
        summary,
        currency="EUR",
        merchant_spend_minor={"m1": summary.spend_minor},
        next_check_at=next_lapse_check(summary, LapseRules(), None, None),
    )


def _weekly_shopper(last: datetime) -> CustomerActivity:
    summary = ActivitySummary()
    for week in reversed(range(10)):
        summary = apply_purchase(summary, last - timedelta(weeks=week), ORDER_MINOR, "m1")
    return _activity("weekly", summary)


async def test_refit_stores_the_model_and_alerts_then_weigh_what_is_still_expected(
    alerts_db: str,
) -> None:
    engine = create_engine(alerts_db, pool_size=2)
    try:
        async with engine.begin() as conn:
            await ActivityRepository(conn).save([*_simulated_customers(400), _weekly_shopper(END)])
        stored = await refit_model(engine, FixedClock(END))
        assert stored is not None, "400 customers with repeat purchases must support a fit"
        params = stored.params
        assert params.n_customers == 401 and stored.as_of == END
        mean_rate = params.r / params.alpha
        assert 0.5 * TRUE_MEAN_WEEKLY_RATE < mean_rate < 2 * TRUE_MEAN_WEEKLY_RATE, (
            f"the fitted mean purchase rate {mean_rate:.2f}/week is far from the simulated 0.5"
        )
        async with engine.connect() as conn:
            assert await ModelRepository(conn).latest() == stored, (
                "the scanner must read the stored fit"
            )

        assert await refresh_segments(engine, FixedClock(END)) == 1, "one merchant ranked"
        await AlertScanner(engine, FixedClock(END)).scan_due(END + timedelta(days=60))
        async with engine.connect() as conn:
            alert = (
                (await conn.execute(sa.text("SELECT * FROM alerts WHERE customer_id = 'weekly'")))
                .mappings()
                .one()
            )
        upper_bound = round(ORDER_MINOR * 90 / 7)
        assert 0 < alert["value_at_risk_minor"] < upper_bound, (
            "with a model, the purchases still expected must lower the value at risk"
            f" below the no-model bound {upper_bound}: {alert['value_at_risk_minor']}"
        )
        assert alert["segment"] in ("A", "B"), "a 10-visit customer ranks high at m1"
    finally:
        await engine.dispose()
