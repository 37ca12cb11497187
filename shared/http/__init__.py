"""HTTP chassis shared by every service: app factory, problem+json, API-key dependencies."""

from shared.http.app import create_service_app, register_outbox_relay
from shared.http.problem import PROBLEM_JSON, problem_response
from shared.http.security import ensure_merchant, require

__all__ = [
    "PROBLEM_JSON",
    "create_service_app",
    "ensure_merchant",
    "problem_response",
    "register_outbox_relay",
    "require",
]
