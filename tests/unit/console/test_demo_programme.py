"""The demo's seeded programme: every event type is either shown by the demo or named as
not showable with a reason, and the programme it seeds is what the services accept."""

from __future__ import annotations

from datetime import UTC, datetime

from services.rewards.catalogue.schemas import ItemDocument
from services.rewards.milestones.schemas import MilestoneDocument
from services.rewards.policies.schemas import LimitsDocument, PolicyDocument
from services.rewards.referrals.schemas import ProgrammeDocument
from services.rewards.vouchers.schemas import RewardDefinition
from shared.contracts.registry import EVENT_MODELS
from tooling.simulator.population import COALITION
from tooling.simulator.programme import (
    CATALOGUE,
    DEMO_EVENTS,
    LIMITS,
    MILESTONE_RULES,
    NOT_IN_DEMO,
    POLICIES,
    REFERRAL_PROGRAMME,
    REWARD_DEFINITIONS,
)
from tooling.simulator.seeding import referral_pairs
from tooling.simulator.stream import SimulationConfig, population


def test_every_event_of_the_catalogue_is_either_in_the_demo_or_explained() -> None:
    catalogue = {event_type for event_type, _ in EVENT_MODELS}
    assert not set(DEMO_EVENTS) & set(NOT_IN_DEMO), "an event cannot be both shown and not"
    assert set(DEMO_EVENTS) | set(NOT_IN_DEMO) == catalogue, (
        "a new event type needs a decision: add it to DEMO_EVENTS (and make the demo produce "
        "it) or to NOT_IN_DEMO with the reason"
    )
    assert all(len(reason) > 20 for reason in NOT_IN_DEMO.values())


def test_the_seeded_documents_are_what_the_admin_apis_accept() -> None:
    for policy in POLICIES.values():
        PolicyDocument.model_validate(policy)
    for limits in LIMITS.values():
        LimitsDocument.model_validate(limits)
    for item in CATALOGUE.values():
        ItemDocument.model_validate(item)
    for rule in MILESTONE_RULES.values():
        MilestoneDocument.model_validate(rule)
    for definition in REWARD_DEFINITIONS.values():
        RewardDefinition.model_validate(definition)
    ProgrammeDocument.model_validate(REFERRAL_PROGRAMME)


def test_policies_cover_the_simulated_promises_and_every_voucher_is_defined() -> None:
    promised = {(m.merchant_id, m.promise.kind) for m in COALITION if m.promise}
    assert promised <= set(POLICIES), "a simulated promise without a policy matches nothing"
    granted = {
        v for p in POLICIES.values() for tier in p["tiers"] for v in tier.get("vouchers", [])
    }
    granted |= {
        r["grant_reward_code"] for r in MILESTONE_RULES.values() if "grant_reward_code" in r
    }
    granted |= {i["reward_code"] for i in CATALOGUE.values()}
    assert granted <= set(REWARD_DEFINITIONS)


def test_referrals_link_early_members_to_customers_who_join_later() -> None:
    config = SimulationConfig(customers=200, start=datetime(2025, 12, 6, tzinfo=UTC))
    joined = {c.customer_id: c.joins_at for c in population(config)}
    pairs = referral_pairs(config)
    assert len(pairs) == 4
    for referrer, referee in pairs:
        assert referrer != referee and joined[referrer] < joined[referee]
