"""The README's HTTP API overview and event catalogue match the code (`make docs`)."""

from __future__ import annotations

from shared.contracts.registry import EVENT_MODELS
from tooling.docs import README, api_overview, event_catalogue, render


def test_readme_generated_sections_are_current() -> None:
    current = README.read_text(encoding="utf-8")
    assert render(current) == current, "README.md is out of date: run `make docs`"


def test_catalogue_lists_every_registered_event() -> None:
    catalogue = event_catalogue()
    for event_type, version in EVENT_MODELS:
        assert f"| `{event_type}` | {version} |" in catalogue


def test_api_overview_names_the_partner_routes_of_every_service() -> None:
    overview = api_overview()
    for route in (
        "| points | GET | `/v1/customers/{customer_id}/balance` |",
        "| rewards | POST | `/v1/vouchers/{code}/redeem` |",
        "| alerts | POST | `/v1/alerts/{alert_id}/ack` |",
    ):
        assert route in overview
