"""The demo's programme: what `loyalty simulate --demo` (`make demo`) seeds through the admin
APIs before the simulated year, so every headline feature shows up in it.

Pure data. The simulated restaurant and hotel get guarantee policies (the restaurant with a
per-customer cap and a small monthly budget, so some compensations wait for a person), the
coalition gets reward definitions, a catalogue, milestone rules and a referral programme.
`DEMO_EVENTS` lists every event type of the catalogue the demo produces; `NOT_IN_DEMO` says,
for each of the others, why a demo cannot show it. A unit test keeps the two lists equal to
the event catalogue; an end-to-end test runs the demo and finds every `DEMO_EVENTS` type.
"""

from __future__ import annotations

from typing import Any

FAR_PAST, FAR_FUTURE = "2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z"

REWARD_DEFINITIONS: dict[str, dict[str, Any]] = {
    "bistro-dessert": {
        "title": "A dessert at the bistro",
        "valid_days": 30,
        "merchant_id": "m-bistro",
    },
    "late-checkout": {
        "title": "Late check-out at the hotel",
        "valid_days": 90,
        "merchant_id": "m-hotel",
    },
    "free-coffee": {"title": "A coffee on the house", "valid_days": 60, "merchant_id": "m-cafe"},
    "car-wash": {"title": "A car wash", "valid_days": 90, "merchant_id": "m-garage"},
    "grocery-10": {
        "title": "10.00 off your groceries",
        "valid_days": 60,
        "merchant_id": "m-grocer",
    },
}

# (merchant, promise kind) -> policy document; tiers escalate on the measured minutes.
POLICIES: dict[tuple[str, str], dict[str, Any]] = {
    ("m-bistro", "dish_wait_time"): {
        "unit": "minutes",
        "tiers": [
            {"over": 10, "vouchers": ["bistro-dessert"]},
            {"over": 15, "refund_basis_points": 2000},
            {"over": 20, "refund_basis_points": 20000},
        ],
        "claim_window_days": 7,
    },
    ("m-hotel", "check_in_time"): {
        "unit": "minutes",
        "tiers": [
            {"over": 3, "points": 200},
            {"over": 6, "vouchers": ["late-checkout"], "points": 300},
            {"over": 9, "refund_basis_points": 1000},
        ],
        "claim_window_days": 7,
    },
}

# One breach compensated per customer per 30 days at the bistro, and 50.00 a month in
# refunds: the rest goes to the review queue (compensation.review_required).
LIMITS: dict[str, dict[str, Any]] = {
    "m-bistro": {"customer_breach_cap": 1, "merchant_monthly_budget_minor": 5000},
    "m-hotel": {"customer_refund_cap_minor": 4000, "merchant_monthly_budget_minor": 30000},
}


def _item(reward: str, title: str, cost: int, merchant: str, **extra: Any) -> dict[str, Any]:
    return {
        "reward_code": reward,
        "title": title,
        "points_cost": cost,
        "claimable_from": FAR_PAST,
        "claimable_until": FAR_FUTURE,
        "voucher_valid_days": REWARD_DEFINITIONS[reward]["valid_days"],
        "merchant_id": merchant,
        **extra,
    }


CATALOGUE: dict[str, dict[str, Any]] = {
    "coffee": _item("free-coffee", "A coffee on the house", 150, "m-cafe"),
    "car-wash": _item("car-wash", "A car wash", 600, "m-garage", total_stock=500),
    "groceries-10": _item(
        "grocery-10", "10.00 off groceries", 1000, "m-grocer", per_customer_limit=3
    ),
    "late-checkout": _item(
        "late-checkout",
        "Late check-out",
        2500,
        "m-hotel",
        eligible_tiers=["silver", "gold", "platinum"],
    ),
}

MILESTONE_RULES: dict[str, dict[str, Any]] = {
    "every-2000-points": {
        "kind": "every_lifetime_points",
        "every_points": 2000,
        "grant_reward_code": "free-coffee",
    },
    "welcome-silver": {"kind": "tier_reached", "tier": "silver", "grant_points": 250},
    "welcome-gold": {"kind": "tier_reached", "tier": "gold", "grant_reward_code": "late-checkout"},
}

REFERRAL_PROGRAMME: dict[str, Any] = {
    "referrer": {"points": 500},
    "referee": {"points": 250},
    "active": True,
}
REFERRALS = 4  # the latest joiners, each referred by one of the earliest

DEMO_EVENTS: tuple[str, ...] = (
    "purchase.completed",
    "purchase.returned",
    "service.incident",
    "points.accrued",
    "points.settled",
    "points.reversed",
    "tier.changed",
    "points.credit_requested",
    "points.credited",
    "points.adjusted",
    "points.redeemed",
    "points.redemption_cancelled",
    "points.debit_requested",
    "points.debited",
    "reward.issued",
    "voucher.redeemed",
    "voucher.expired",
    "compensation.granted",
    "compensation.review_required",
    # Held at the incident's own time, months back in the simulated year: the green
    # channel's 12 h escalation and 24 h overdue are already due when the jobs run.
    "compensation.escalated",
    "review.overdue",
    "refund.instructed",
    "alert.raised",
    "alert.escalated",
    "customer.reactivated",
    "follow_up.due",
)

NOT_IN_DEMO: dict[str, str] = {
    "points.expired": "points expire 12 months after they become available; the simulated "
    "year ends before the first lot's expiry",
    "claim.escalated": "a guarantee claim escalates 12 hours (wall clock) after filing; the "
    "demo lasts minutes",
    "points.debit_rejected": "the rewards service refuses a claim over the customer's balance "
    "before the saga starts, so a demo cannot make the points service refuse one",
    "points.debit_reversal_requested": "only when a catalogue claim stays unanswered for 5 "
    "minutes (a lost or dead-lettered debit), which a healthy demo never has",
    "points.debit_reversed": "the answer to points.debit_reversal_requested (see there)",
}
