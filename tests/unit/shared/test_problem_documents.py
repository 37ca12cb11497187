"""Problem documents (RFC 9457): stable members, and validation errors naming field and rule."""

from __future__ import annotations

from shared.http.problem import problem_body, validation_errors


def test_a_problem_carries_type_title_status_and_code() -> None:
    body = problem_body(409, "already_redeemed", detail="voucher V1 was used", extra={"v": "V1"})
    assert body == {
        "type": "urn:loyalty:problem:already_redeemed",
        "title": "Conflict",
        "status": 409,
        "code": "already_redeemed",
        "detail": "voucher V1 was used",
        "v": "V1",
    }


def test_extra_fields_cannot_overwrite_the_standard_members() -> None:
    body = problem_body(403, "forbidden", extra={"status": 200, "code": "ok"})
    assert body["status"] == 403 and body["code"] == "forbidden", "an extra field forged the status"


def test_each_validation_error_names_the_field_and_the_rule() -> None:
    errors = validation_errors(
        [
            {
                "type": "greater_than",
                "loc": ("body", "points"),
                "msg": "Input should be greater than 0",
                "input": -5,
                "ctx": {"gt": 0},
            },
            {"type": "missing", "loc": ("body", "items", 2, "sku"), "msg": "Field required"},
        ]
    )
    assert errors == [
        {
            "field": "body.points",
            "rule": "greater_than",
            "message": "Input should be greater than 0",
            "params": {"gt": 0},
        },
        {"field": "body.items.2.sku", "rule": "missing", "message": "Field required"},
    ]


def test_validation_parameters_that_are_not_plain_values_become_text() -> None:
    errors = validation_errors(
        [{"type": "value_error", "loc": ("body",), "msg": "bad", "ctx": {"error": ValueError("x")}}]
    )
    assert errors[0]["params"] == {"error": "x"}, "an exception object leaked into the JSON body"
