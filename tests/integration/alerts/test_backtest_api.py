"""POST /v1/admin/backtest on the purchase history the consumer keeps."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from services.alerts.clock.service import FixedClock
from tests.integration.alerts.conftest import (
    AlertsHarness,
    api_client,
    day,
    every,
    make_keys,
    problem,
    shopping,
)

pytestmark = pytest.mark.integration


def _rule(card: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in card["rules"] if r["name"] == name)


async def test_backtest_scores_the_rules_on_the_services_own_history(
    harness: AlertsHarness, unique: str
) -> None:
    stopped = [f"stopped-{unique}-{k}" for k in range(2)]
    steady = [f"steady-{unique}-{k}" for k in range(2)]
    other = f"m2-{unique}"
    for customer in stopped:
        await harness.publish(every(customer, days=7, visits=6, last=35))
    for customer in steady:
        await harness.publish(every(customer, days=7, visits=21, last=140))
    await harness.publish([shopping(other, day(d), merchant="m2") for d in (0, 30, 100)])
    await harness.settled()
    request = {"as_of": day(60).isoformat(), "horizon_days": 90}
    async with api_client(harness.infra, harness.db_url, FixedClock(day(200))) as client:
        keys = await make_keys(harness.engine)
        answer = await client.post("/v1/admin/backtest", json=request, headers=keys.admin)
        assert answer.status_code == 200, answer.text
        card = answer.json()["overall"]
        assert (card["customers"], card["lapsed"]) == (5, 2), card
        rhythm = _rule(card, "own_rhythm")
        assert (rhythm["flagged"], rhythm["precision"], rhythm["recall"]) == (2, 1.0, 1.0), (
            "the two weekly shoppers silent for 25 days lapsed, and the rhythm rule caught both"
        )
        assert rhythm["lift"] == pytest.approx(2.5)
        assert {c["merchant_id"] for c in answer.json()["by_merchant"]} == {"m1", "m2"}

        bound = await client.post("/v1/admin/backtest", json=request, headers=keys.bound_m2)
        assert bound.status_code == 200, bound.text
        assert bound.json()["overall"]["customers"] == 1, "a bound key sees its customers only"
        foreign = {**request, "merchant_id": "m1"}
        problem(
            await client.post("/v1/admin/backtest", json=foreign, headers=keys.bound_m2),
            403,
            "merchant_mismatch",
        )

        trial = {**request, "settings": {"own_rhythm_enabled": False}}
        tried = await client.post("/v1/admin/backtest", json=trial, headers=keys.admin)
        off = _rule(tried.json()["overall"], "own_rhythm")
        assert (off["enabled"], off["flagged"]) == (False, 2), "an off rule is scored as if on"
        combined = _rule(tried.json()["overall"], "combined (any enabled rule)")
        assert combined["flagged"] == 0, "but only the rules in force make the combined policy"
        assert await harness.scalar("SELECT count(*) FROM alert_thresholds") == 0, (
            "trying a threshold must not store it"
        )

        future = {"as_of": day(150).isoformat(), "horizon_days": 90}
        early = await client.post("/v1/admin/backtest", json=future, headers=keys.admin)
        errors = problem(early, 422, "validation_failed")["errors"]
        assert [(e["field"], e["rule"]) for e in errors] == [
            ("body.horizon_days", "horizon_passed")
        ]
        bad = {**request, "settings": {"rhythm_multiple": 0}}
        refused = await client.post("/v1/admin/backtest", json=bad, headers=keys.admin)
        errors = problem(refused, 422, "validation_failed")["errors"]
        assert errors[0]["field"] == "body.settings.rhythm_multiple"
        contradiction = {
            **request,
            "settings": {
                "at_risk_no_purchase_probability": 0.9,
                "lapsed_no_purchase_probability": 0.5,
            },
        }
        refused = await client.post("/v1/admin/backtest", json=contradiction, headers=keys.admin)
        errors = problem(refused, 422, "validation_failed")["errors"]
        assert errors[0]["rule"] == "thresholds_consistent"
        problem(
            await client.post("/v1/admin/backtest", json=request, headers=keys.points_only),
            403,
            "scope_missing",
        )


async def test_the_cli_backtests_the_services_history(harness: AlertsHarness, unique: str) -> None:
    for k in range(3):
        await harness.publish(every(f"cli-{unique}-{k}", days=7, visits=6, last=35))
    await harness.publish([shopping(f"cli-{unique}-0", day(70))])
    await harness.settled()
    argv = ["--as-of", day(60).isoformat(), "--horizon", "30", "--json"]
    command = [sys.executable, "-m", "tooling.cli", "backtest", "--database-url", harness.db_url]
    done = await asyncio.to_thread(
        subprocess.run, [*command, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    card = json.loads(done.stdout)["overall"]
    assert (card["customers"], card["lapsed"]) == (3, 2), card
    assert _rule(card, "own_rhythm")["flagged"] == 3, "all three were 25 days past a weekly rhythm"
    refused = await asyncio.to_thread(
        subprocess.run,
        [*command, *argv, "--set", "rhythm_multiple=0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "rhythm_multiple" in refused.stderr, refused.stderr
