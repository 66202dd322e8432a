"""Inventory HTTP API under moto: set, adjust and read stock through the template's InventoryApiFunction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from converge.envelope import event_from_item
from tests.support.events import http_event
from tests.support.stack import FunctionRunner, Stack

API = "InventoryApiFunction"
TABLE = "InventoryTable"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def set_stock(functions: FunctionRunner, product_id: str, body: Any, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("admin", True)  # stock is the warehouse's (the admin group)
    event = http_event(
        "PUT",
        f"/products/{product_id}/stock",
        route="/products/{product_id}/stock",
        path_parameters={"product_id": product_id},
        body=body,
        **kwargs,
    )
    return functions.invoke(API, event)  # type: ignore[no-any-return]


def adjust_stock(functions: FunctionRunner, product_id: str, body: Any, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("admin", True)
    event = http_event(
        "POST",
        f"/products/{product_id}/stock/adjustments",
        route="/products/{product_id}/stock/adjustments",
        path_parameters={"product_id": product_id},
        body=body,
        **kwargs,
    )
    return functions.invoke(API, event)  # type: ignore[no-any-return]


def get_product(functions: FunctionRunner, product_id: str) -> dict[str, Any]:
    event = http_event(
        "GET", f"/products/{product_id}", route="/products/{product_id}", path_parameters={"product_id": product_id}
    )
    return functions.invoke(API, event)  # type: ignore[no-any-return]


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def product_item(stack: Stack, product_id: str) -> dict[str, Any] | None:
    return stack.get_item(TABLE, f"PRODUCT#{product_id}", "PRODUCT")


def reserve_directly(stack: Stack, product_id: str, reserved: int) -> None:
    """Put a product holding a reservation (what the consumer would have left) straight into the table."""
    item = product_item(stack, product_id)
    assert item is not None
    item.update(reserved=reserved, available=item["on_hand"] - reserved, version=item["version"] + 1)
    stack.put_item(TABLE, item)


# ---------------------------------------------------------------- PUT /products/{id}/stock
def test_set_stock_creates_the_product_at_version_1_and_stamps_the_write(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN no product p1
    # WHEN its stock is set with a correlation id
    response = set_stock(functions, "p1", {"on_hand": 10}, headers={"X-Correlation-Id": "corr-set-1"})
    # THEN it answers 200 with the new product
    assert response["statusCode"] == 200
    assert body(response) == {"product_id": "p1", "on_hand": 10, "reserved": 0, "available": 10, "version": 1}
    # AND the item carries state, version, event type, correlation id and time
    item = product_item(stack, "p1")
    assert item is not None
    assert (item["on_hand"], item["reserved"], item["available"], item["version"]) == (10, 0, 10, 1)
    assert item["event_type"] == "StockUpdated"
    assert item["correlation_id"] == "corr-set-1"
    assert item["updated_at"].endswith("+00:00")
    # AND the publisher would emit StockUpdated version 1 for it
    event = event_from_item(item)
    assert event is not None
    assert (event.event_type, event.metadata.entity_version, event.metadata.correlation_id) == (
        "StockUpdated",
        1,
        "corr-set-1",
    )


def test_set_stock_without_correlation_header_uses_the_request_id(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a request without X-Correlation-Id
    event = http_event(
        "PUT",
        "/products/p1/stock",
        route="/products/{product_id}/stock",
        path_parameters={"product_id": "p1"},
        body={"on_hand": 3},
        admin=True,
    )
    # WHEN it is handled
    assert functions.invoke(API, event)["statusCode"] == 200
    # THEN the item's correlation id is the API request id
    item = product_item(stack, "p1")
    assert item is not None
    assert item["correlation_id"] == event["requestContext"]["requestId"]


def test_set_stock_again_keeps_reserved_and_bumps_the_version(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 10 on hand, 4 of them reserved
    set_stock(functions, "p1", {"on_hand": 10})
    reserve_directly(stack, "p1", 4)
    # WHEN on-hand is set to 6
    response = set_stock(functions, "p1", {"on_hand": 6})
    # THEN reserved stays and available follows
    assert response["statusCode"] == 200
    assert body(response) == {"product_id": "p1", "on_hand": 6, "reserved": 4, "available": 2, "version": 3}


def test_set_stock_below_reserved_is_a_conflict_and_changes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 10 on hand, 4 reserved
    set_stock(functions, "p1", {"on_hand": 10})
    reserve_directly(stack, "p1", 4)
    before = product_item(stack, "p1")
    # WHEN on-hand is set to 3
    response = set_stock(functions, "p1", {"on_hand": 3})
    # THEN 409, and the item is untouched
    assert response["statusCode"] == 409
    assert "reserved 4" in body(response)["message"]
    assert product_item(stack, "p1") == before


# ---------------------------------------------------------------- POST /products/{id}/stock/adjustments
def test_adjustments_add_and_remove_stock(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 10 on hand
    set_stock(functions, "p1", {"on_hand": 10})
    # WHEN 5 arrive and then 7 leave
    received = adjust_stock(functions, "p1", {"delta": 5}, headers={"X-Correlation-Id": "corr-adj"})
    removed = adjust_stock(functions, "p1", {"delta": -7})
    # THEN each answers 200 with the product after it
    assert (received["statusCode"], body(received)["on_hand"], body(received)["version"]) == (200, 15, 2)
    assert body(removed) == {"product_id": "p1", "on_hand": 8, "reserved": 0, "available": 8, "version": 3}
    # AND the stored item is a valid StockUpdated at version 3
    item = product_item(stack, "p1")
    assert item is not None
    event = event_from_item(item)
    assert event is not None
    assert (event.event_type, event.metadata.entity_version) == ("StockUpdated", 3)


def test_adjusting_an_unknown_product_is_404_and_creates_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no product p9
    # WHEN stock is added to it
    response = adjust_stock(functions, "p9", {"delta": 5})
    # THEN 404 and no item appears
    assert response["statusCode"] == 404
    assert product_item(stack, "p9") is None


@pytest.mark.parametrize(
    ("delta", "message"),
    [(-11, "negative"), (-7, "below reserved"), (1_000_000_000, "exceed")],
)
def test_adjustment_breaking_an_invariant_is_409(
    stack: Stack, functions: FunctionRunner, delta: int, message: str
) -> None:
    # GIVEN p1 with 10 on hand, 4 reserved
    set_stock(functions, "p1", {"on_hand": 10})
    reserve_directly(stack, "p1", 4)
    before = product_item(stack, "p1")
    # WHEN an adjustment would make on_hand negative, below reserved, or beyond the contract's maximum
    response = adjust_stock(functions, "p1", {"delta": delta})
    # THEN 409 saying why, and nothing changed
    assert response["statusCode"] == 409
    assert message in body(response)["message"]
    assert product_item(stack, "p1") == before


def test_adjustment_down_to_exactly_reserved_is_allowed(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 10 on hand, 4 reserved
    set_stock(functions, "p1", {"on_hand": 10})
    reserve_directly(stack, "p1", 4)
    # WHEN 6 are removed
    response = adjust_stock(functions, "p1", {"delta": -6})
    # THEN nothing is available any more, and nothing reserved was lost
    assert response["statusCode"] == 200
    assert body(response)["on_hand"] == 4
    assert body(response)["available"] == 0


# ---------------------------------------------------------------- GET /products/{id}
def test_get_product_returns_its_stock(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 10 on hand, 4 reserved
    set_stock(functions, "p1", {"on_hand": 10})
    reserve_directly(stack, "p1", 4)
    # WHEN it is read
    response = get_product(functions, "p1")
    # THEN 200 with its levels and version
    assert response["statusCode"] == 200
    assert body(response) == {"product_id": "p1", "on_hand": 10, "reserved": 4, "available": 6, "version": 2}


def test_get_unknown_product_is_404(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an empty table
    # WHEN p9 is read
    response = get_product(functions, "p9")
    # THEN 404
    assert response["statusCode"] == 404
    assert "p9" in body(response)["message"]


# ---------------------------------------------------------------- 400s
@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"on_hand": "ten"}, "on_hand"),
        ({"on_hand": "10"}, "on_hand"),
        ({"on_hand": 2.5}, "on_hand"),
        ({"on_hand": True}, "on_hand"),
        ({"on_hand": -1}, "on_hand"),
        ({"on_hand": 10**30}, "on_hand"),
        ({}, "on_hand"),
        ({"on_hand": 1, "colour": "red"}, "colour"),
    ],
)
def test_invalid_set_stock_body_is_400_naming_the_field(
    stack: Stack, functions: FunctionRunner, request_body: Any, field: str
) -> None:
    # GIVEN a body with a wrong, missing, huge or unexpected field
    # WHEN it is sent
    response = set_stock(functions, "p1", request_body)
    # THEN 400 names the field, and nothing is written
    assert response["statusCode"] == 400
    assert field in [e["field"] for e in body(response)["errors"]]
    assert product_item(stack, "p1") is None


@pytest.mark.parametrize(
    ("request_body", "field"),
    [({"delta": 0}, "delta"), ({"delta": "5"}, "delta"), ({"delta": -(10**12)}, "delta"), ({}, "delta")],
)
def test_invalid_adjustment_body_is_400_naming_the_field(
    stack: Stack, functions: FunctionRunner, request_body: Any, field: str
) -> None:
    # GIVEN p1 with 10 on hand
    set_stock(functions, "p1", {"on_hand": 10})
    # WHEN an adjustment with a zero, mistyped, huge or missing delta is sent
    response = adjust_stock(functions, "p1", request_body)
    # THEN 400 names the field and the stock is unchanged
    assert response["statusCode"] == 400
    assert field in [e["field"] for e in body(response)["errors"]]
    assert body(get_product(functions, "p1"))["version"] == 1


def test_non_json_body_is_400(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a body that is not JSON
    # WHEN it is sent
    response = set_stock(functions, "p1", None, raw_body="on_hand=10")
    # THEN 400 says the JSON is invalid, and nothing is written
    assert response["statusCode"] == 400
    assert [e["type"] for e in body(response)["errors"]] == ["json_invalid"]
    assert product_item(stack, "p1") is None


@pytest.mark.parametrize("product_id", ["p 1", "p*1", "x" * 65])
def test_product_id_outside_the_contract_is_400(stack: Stack, functions: FunctionRunner, product_id: str) -> None:
    # GIVEN a product id the event contract would refuse
    # WHEN its stock is set
    response = set_stock(functions, product_id, {"on_hand": 1})
    # THEN 400 names the path parameter, and nothing is written
    assert response["statusCode"] == 400
    assert [e["field"] for e in body(response)["errors"]] == ["path.product_id"]
    assert stack.scan(TABLE) == []


def test_overlong_correlation_id_is_400(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a correlation id longer than the envelope allows
    # WHEN it is sent
    response = set_stock(functions, "p1", {"on_hand": 1}, headers={"X-Correlation-Id": "c" * 129})
    # THEN 400 names the header
    assert response["statusCode"] == 400
    assert "x-correlation-id" in body(response)["message"].lower()


# ---------------------------------------------------------------- sam local fixtures
@pytest.mark.parametrize(("fixture", "status"), [("set-stock", 200), ("adjust-stock", 404), ("get-product", 404)])
def test_sam_fixtures_on_an_empty_table(stack: Stack, functions: FunctionRunner, fixture: str, status: int) -> None:
    # GIVEN the committed `sam local invoke -e` fixture and an empty table
    event = json.loads((EVENTS_DIR / f"{API}.{fixture}.json").read_text())
    # WHEN the function is invoked with it
    response = functions.invoke(API, event)
    # THEN it answers as the route does
    assert response["statusCode"] == status


def test_sam_fixtures_in_sequence_set_adjust_and_read(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the committed fixtures
    fixtures = {
        n: json.loads((EVENTS_DIR / f"{API}.{n}.json").read_text())
        for n in ("set-stock", "adjust-stock", "get-product")
    }
    # WHEN stock is set, adjusted and read with them
    for name in ("set-stock", "adjust-stock"):
        assert functions.invoke(API, fixtures[name])["statusCode"] == 200
    response = functions.invoke(API, fixtures["get-product"])
    # THEN the read shows both writes
    assert response["statusCode"] == 200
    assert body(response)["version"] == 2
