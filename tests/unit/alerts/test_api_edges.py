"""Pure pieces of the alerts API and wiring: cursors, threshold scopes, what is consumed."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from services.alerts.handlers import alerts_registry
from services.alerts.lapse.repository import Position
from services.alerts.lapse.schemas import decode_cursor, encode_cursor
from services.alerts.settings import AlertsSettings
from services.alerts.thresholds.schemas import ThresholdsPut
from shared.contracts.points import POINTS_EVENTS
from shared.contracts.registry import EVENT_MODELS
from shared.errors import Unprocessable


def test_a_cursor_round_trips_and_names_the_exact_position() -> None:
    position = Position(77_143, uuid.uuid4())
    assert decode_cursor(encode_cursor(position)) == position
    assert decode_cursor(encode_cursor(Position(0, position.alert_id))).value_at_risk_minor == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-ours",
        "djE6MTI6bm90LWEtdXVpZA",
        "djI6MTI6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw",
        "ü",
    ],
)
def test_a_cursor_we_did_not_issue_is_a_validation_error_on_the_cursor(cursor: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        decode_cursor(cursor)
    assert refused.value.extra["errors"][0]["field"] == "query.cursor"


def test_a_cursor_beyond_a_bigint_is_refused_rather_than_sent_to_the_database() -> None:
    import base64

    text = f"v1:{2**63}:{uuid.uuid4()}".encode()
    with pytest.raises(Unprocessable):
        decode_cursor(base64.urlsafe_b64encode(text).decode())


def test_threshold_scopes_need_an_id_except_the_default() -> None:
    assert ThresholdsPut.model_validate({"scope": "default", "settings": {}}).scope_id is None
    with pytest.raises(ValidationError, match="needs its scope_id"):
        ThresholdsPut.model_validate({"scope": "category", "settings": {}})
    with pytest.raises(ValidationError, match="takes no scope_id"):
        ThresholdsPut.model_validate({"scope": "default", "scope_id": "m1", "settings": {}})
    with pytest.raises(ValidationError):
        ThresholdsPut.model_validate(
            {"scope": "merchant", "scope_id": "m1", "settings": {"inactivity_window_days": 0}}
        )


def test_every_points_event_keeps_the_tier_and_nothing_else_is_handled_beyond_purchases() -> None:
    handled = set(alerts_registry().handlers)
    points_types = {key[0] for key, model in EVENT_MODELS.items() if model in POINTS_EVENTS}
    assert handled == {"purchase.completed", "purchase.returned", *points_types}
    assert "points.credit_requested" not in handled, "rewards events are known but ignored"


def test_the_service_consumes_purchases_points_and_rewards() -> None:
    settings = AlertsSettings(database_url="postgresql://u@h/alerts")
    assert settings.consumed_topics == ["pos.purchases", "loyalty.points", "loyalty.rewards"]
    assert settings.http_port == 8003 and settings.run_workers
    assert settings.database_url.startswith("postgresql+asyncpg://")
