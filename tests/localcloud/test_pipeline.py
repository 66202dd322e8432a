"""The real template.yaml end to end on localcloud: a command in one service changes a projection in another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from localcloud.template import ROOT, load_template
from tests.localcloud.helpers import admin_token, customer_token
from tests.localcloud.real import REAL_TEMPLATE


@pytest.fixture
def real() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as cloud:
        yield cloud


def _ok(response: Any) -> Any:
    assert 200 <= response.status < 300, (response.status, response.body)
    return response.json()


def _place(cloud: LocalCloud, customer: str, product: str, quantity: int) -> Any:
    """An order of `customer` (sent with its token) for one line; the order as the API returned it."""
    body = {"lines": [{"product_id": product, "quantity": quantity}]}
    return _ok(cloud.http("POST", "/orders", body=body, token=customer_token(cloud, customer)))


def test_set_stock_becomes_availability_in_notifications(real: LocalCloud) -> None:
    # GIVEN no availability for a product
    assert real.http("GET", "/availability/sku-1", token=admin_token(real)).status == 404
    # WHEN inventory's stock is set and the pipeline settles
    _ok(real.http("PUT", "/products/sku-1/stock", body={"on_hand": 7}, token=admin_token(real)))
    real.run_until_quiet()
    # THEN the notifications service shows the product's availability at the product's version
    availability = _ok(real.http("GET", "/availability/sku-1", token=admin_token(real)))
    product = _ok(real.http("GET", "/products/sku-1", token=admin_token(real)))
    assert (availability["on_hand"], availability["available"]) == (7, 7)
    assert availability["version"] == product["version"]


def test_a_placed_order_is_confirmed_reserved_and_notified(real: LocalCloud) -> None:
    # GIVEN stock for the product
    _ok(real.http("PUT", "/products/sku-1/stock", body={"on_hand": 5}, token=admin_token(real)))
    real.run_until_quiet()
    # WHEN an order is placed and the pipeline settles
    order = _place(real, "cust-1", "sku-1", 2)
    assert order["status"] == "PENDING"
    real.run_until_quiet()
    # THEN orders confirmed it, inventory reserved the stock, and the customer was notified
    as_customer = customer_token(real, "cust-1")
    assert _ok(real.http("GET", f"/orders/{order['order_id']}", token=as_customer))["status"] == "CONFIRMED"
    assert _ok(real.http("GET", "/products/sku-1", token=admin_token(real)))["reserved"] == 2
    notifications = json.dumps(_ok(real.http("GET", "/customers/cust-1/notifications", token=as_customer)))
    assert order["order_id"] in notifications
    assert "ORDER_CONFIRMED" in notifications


def _with_absolute_code_paths(template: dict[str, Any]) -> dict[str, Any]:
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = str((ROOT / props[key]).resolve()) + "/"
    return template


def test_a_rule_pattern_broken_in_a_copy_of_the_template_stops_the_event(tmp_path: Path) -> None:
    # GIVEN a copy of template.yaml whose notifications rule misspells StockUpdated
    template = _with_absolute_code_paths(load_template(REAL_TEMPLATE))
    pattern = template["Resources"]["NotificationsInboxRule"]["Properties"]["EventPattern"]
    for branch in pattern["$or"]:
        branch["detail-type"] = [t if t != "StockUpdated" else "StockUpdatedTypo" for t in branch["detail-type"]]
    copy = tmp_path / "template.yaml"
    copy.write_text(json.dumps(template))  # JSON is YAML
    with LocalCloud(copy) as cloud:
        # WHEN stock is set and the pipeline settles
        _ok(cloud.http("PUT", "/products/sku-1/stock", body={"on_hand": 3}, token=admin_token(cloud)))
        cloud.run_until_quiet()
        # THEN the event was published but never reached the notifications inbox
        assert cloud.metric("EventsPublished") >= 1
        assert cloud.invocation_count("NotificationsConsumerFunction") == 0
        assert cloud.http("GET", "/availability/sku-1", token=admin_token(cloud)).status == 404


def test_a_poison_stream_record_ends_in_the_dlq_after_the_configured_retries_and_the_rest_is_applied(
    real: LocalCloud,
) -> None:
    # GIVEN a valid stock change and, after it in the same stream batch, an item that is not a valid event
    _ok(real.http("PUT", "/products/sku-1/stock", body={"on_hand": 4}, token=admin_token(real)))
    real.put_item(
        "InventoryTable", {"pk": {"S": "PRODUCT#poison"}, "sk": {"S": "PRODUCT"}, "event_type": {"S": "StockUpdated"}}
    )
    # WHEN the pipeline settles
    real.run_until_quiet()
    # THEN the valid change reached notifications, and the poison record's metadata is in the publisher's
    # OnFailure queue after 1 + MaximumRetryAttempts invocations, as template.yaml configures
    assert _ok(real.http("GET", "/availability/sku-1", token=admin_token(real)))["on_hand"] == 4
    stream = load_template(REAL_TEMPLATE)["Resources"]["InventoryPublisherFunction"]["Properties"]["Events"]["Stream"]
    retries = stream["Properties"]["MaximumRetryAttempts"]
    [failure] = [json.loads(m["Body"]) for m in real.receive_messages("InventoryDLQ")]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 1 + retries
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1


def test_the_schedule_fires_the_reconciler_which_repairs_a_lost_projection(real: LocalCloud) -> None:
    # GIVEN availability projected for a product, then lost (as if its event never arrived)
    _ok(real.http("PUT", "/products/sku-1/stock", body={"on_hand": 9}, token=admin_token(real)))
    real.run_until_quiet()
    real.delete_item("NotificationsTable", {"pk": {"S": "AVAILABILITY#sku-1"}, "sk": {"S": "AVAILABILITY"}})
    assert real.http("GET", "/availability/sku-1", token=admin_token(real)).status == 404
    # WHEN the clock reaches the reconciler's schedule and the pipeline settles
    assert real.advance(60) == []
    fired = real.advance(300)
    real.run_until_quiet()
    # THEN the reconciler ran from its schedule and the projection is back
    assert [i.function for i in fired] == ["ReconcilerFunction"]
    assert all(i.ok for i in fired)
    assert _ok(real.http("GET", "/availability/sku-1", token=admin_token(real)))["on_hand"] == 9


def _divergence(cloud: LocalCloud) -> dict[str, int]:
    return cloud.check_convergence().counts


def test_the_convergence_check_counts_divergent_entities_per_projection(real: LocalCloud) -> None:
    # GIVEN a product and a confirmed order, fully propagated
    _ok(real.http("PUT", "/products/sku-1/stock", body={"on_hand": 5}, token=admin_token(real)))
    _place(real, "cust-1", "sku-1", 1)
    real.run_until_quiet()
    assert _divergence(real) == {
        "availability": 0,
        "order_reservations": 0,
        "order_notifications": 0,
        "order_shipments": 0,
    }
    # WHEN a new order is placed but not propagated, and the product's availability is lost
    _place(real, "cust-2", "sku-1", 1)
    real.delete_item("NotificationsTable", {"pk": {"S": "AVAILABILITY#sku-1"}, "sk": {"S": "AVAILABILITY"}})
    # THEN the PENDING order and the product count as divergent, each in its projection
    assert _divergence(real) == {
        "availability": 1,
        "order_reservations": 1,
        "order_notifications": 0,
        "order_shipments": 0,
    }


def test_each_functions_log_lines_carry_its_own_service(real: LocalCloud) -> None:
    # GIVEN the API functions of two services, run one after the other in the one interpreter
    real.http("PUT", "/products/sku-log/stock", body={"on_hand": 3}, token=admin_token(real))
    real.http("GET", "/orders/no-such-order", token=customer_token(real, "cust-1"))
    real.run_until_quiet()
    # THEN every JSON log line of each invocation names that function's POWERTOOLS_SERVICE_NAME
    seen: dict[str, set[str]] = {}
    for invocation in real.invocations():
        for line in invocation.logs.splitlines():
            if line.startswith("{") and '"service"' in line:
                seen.setdefault(invocation.function, set()).add(json.loads(line)["service"])
    assert seen, "no log lines captured"
    for function, names in seen.items():
        assert names == {real.function(function).environment.get("POWERTOOLS_SERVICE_NAME")}, (function, names)


def test_one_correlation_id_follows_an_order_through_every_function_under_its_own_service(real: LocalCloud) -> None:
    # GIVEN stock for a product
    _ok(real.http("PUT", "/products/sku-1/stock", body={"on_hand": 5}, token=admin_token(real)))
    real.run_until_quiet()
    start = len(real.invocations())
    # WHEN a customer places an order with a correlation id and the pipeline settles
    body = {"lines": [{"product_id": "sku-1", "quantity": 2}]}
    headers = {"X-Correlation-Id": "corr-follow-1"}
    _ok(real.http("POST", "/orders", body=body, headers=headers, token=customer_token(real, "cust-1")))
    real.run_until_quiet()
    # THEN every function that handled the order's events logged a line naming that id, under its own service
    handled = real.invocations(since=start)
    naming: dict[str, set[str]] = {}
    outcomes: set[tuple[str, str]] = set()
    for invocation in handled:
        for line in (json.loads(text) for text in invocation.logs.splitlines() if text.startswith("{")):
            ids = {line.get("correlation_id")} | {e.get("correlation_id") for e in line.get("events", [])}
            if "corr-follow-1" in ids:
                naming.setdefault(invocation.function, set()).add(line["service"])
                outcomes.add((invocation.function, line.get("outcome", "")))
    assert set(naming) == {i.function for i in handled}
    assert {
        "OrdersApiFunction",
        "OrdersPublisherFunction",
        "InventoryConsumerFunction",
        "InventoryPublisherFunction",
        "OrdersConsumerFunction",
        "NotificationsConsumerFunction",
        "ShippingConsumerFunction",
    } <= set(naming)
    for function, services in naming.items():
        assert services == {real.function(function).environment["POWERTOOLS_SERVICE_NAME"]}, function
    # AND each consumer's line says what it did with the event, each publisher's what it published
    assert ("InventoryConsumerFunction", "applied") in outcomes
    assert ("OrdersPublisherFunction", "published") in outcomes


def test_with_logs_echoed_a_function_that_raises_prints_its_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    # GIVEN a LocalCloud echoing function logs (what `serve --logs` runs)
    with LocalCloud(REAL_TEMPLATE, echo_logs=True) as cloud:
        # WHEN a function raises (the reconciler handed an HTTP request)
        invocation = cloud.invoke("ReconcilerFunction", {"requestContext": {"http": {"method": "GET"}}})
    # THEN the invocation failed, and its traceback was printed, naming the function and the one-line error
    assert invocation.error is not None
    err = capfd.readouterr().err
    assert "ReconcilerFunction raised:" in err
    assert "Traceback (most recent call last)" in err
    assert "UnexpectedEventError: expected an EventBridge scheduled event" in err
