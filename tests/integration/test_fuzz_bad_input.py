"""Bad input, generated: malformed API bodies get a 400 naming the field; malformed inbox records fail alone.

Then the inputs that broke a parser (deep nesting, long numbers, undecodable bytes, oversized bodies): a 4xx in
the one error shape naming the problem. And every function fed every kind of event it is not wired to (each
fixture in events/, REST v1 and ALB requests, a list, null, a string): one UnexpectedEventError, naming the kind
expected and the kind received, never a traceback from inside Powertools. And every route of the template, called
without a caller the function can verify (no claims, claims of no use): a 401; by a customer on an admin route: a
403 (a malformed request, the 4xx its body earns). Each in the one error shape, and nothing is written.

Hypothesis generates the inputs (derandomized, so every run feeds the same ones). Inbox batches mix malformed
records with valid ones: the handler must answer with a partial batch response that lists exactly the
malformed records, and every valid record of the same batch must be applied (its state is in the table).
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converge.consumer import SQS_BATCH
from converge.contracts import EVENT_TYPES, function_kinds
from converge.dynamo import from_item, to_item
from converge.errors import UnexpectedEventError
from converge.http import (
    HTTP_API_REQUEST,
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_NUMBER_CHARS,
    RequestRejected,
    bounded_json,
)
from converge.publisher import STREAM_BATCH, stream_records
from converge.upcast import accepted_versions
from localcloud.httpapi import Route, routes_from_template
from tests.integration.test_publisher import EVENTS_DIR, order_item
from tests.security.test_authorization import ADMIN_ROUTES
from tests.support.events import domain_event, eventbridge_event, http_event, jwt_authorizer_context, sqs_event
from tests.support.stack import FunctionRunner, Stack, lambda_stream_event

FUZZ = settings(
    derandomize=True,  # the same inputs on every run and every machine
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
LINES = [{"product_id": "fz-p1", "quantity": 1}]
CUSTOMER = "fz-cust"
WAREHOUSE: dict[str, Any] = {"caller": "fz-warehouse", "admin": True}  # who sets stock and dispatches (the admin group)
ORDER: dict[str, Any] = {"lines": LINES}  # a POST /orders body: the customer is the caller, never a body field
ORDERED: dict[str, Any] = {"customer_id": CUSTOMER, "lines": LINES}  # an order's state, as events carry it
CONSUMED = {
    "InventoryConsumerFunction": ("OrderPlaced", "OrderCancelled"),
    "OrdersConsumerFunction": ("StockReserved", "StockReservationFailed"),
    "NotificationsConsumerFunction": ("StockUpdated", "OrderConfirmed", "OrderRejected", "OrderCancelled"),
}
DATA_OF: dict[str, dict[str, Any]] = {
    "OrderPlaced": {"order_id": "fz-o", **ORDERED, "status": "PENDING"},
    "OrderCancelled": {"order_id": "fz-o", **ORDERED, "status": "CANCELLED"},
    "OrderConfirmed": {"order_id": "fz-o", **ORDERED, "status": "CONFIRMED"},
    "OrderRejected": {"order_id": "fz-o", **ORDERED, "status": "REJECTED", "reason": "no stock"},
    "StockReserved": {"order_id": "fz-o", "lines": LINES, "status": "RESERVED"},
    "StockReservationFailed": {"order_id": "fz-o", "lines": LINES, "status": "FAILED", "shortages": ["fz-p1"]},
    "StockReleased": {"order_id": "fz-o", "lines": LINES, "status": "RELEASED"},
    "StockUpdated": {"product_id": "fz-o", "on_hand": 5, "reserved": 1, "available": 4},
}
# One valid EventBridge event per type, copied and broken by the mutations below.
BASE = {t: eventbridge_event(domain_event(t, data, version=2)) for t, data in DATA_OF.items()}

text = st.text(max_size=40)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12
)
non_identifiers = st.one_of(
    st.just(""),
    # longer than any id may be, within MAX_BODY_BYTES (a longer body is a 413: see the parser-breaking bodies)
    st.integers(65, MAX_BODY_BYTES - 1024).map(lambda n: "i" * n),
    st.text(min_size=1, max_size=20).filter(
        lambda s: any(not (c.isascii() and (c.isalnum() or c in "_.:-")) for c in s)
    ),
)
not_int = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), text, st.lists(st.integers(), max_size=2))


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


# ---------------------------------------------------------------- inbox records
Mutation = Callable[[st.DrawFn, dict[str, Any]], str]


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event)


def not_json(draw: st.DrawFn, event: dict[str, Any]) -> str:
    whole = _dumps(event)
    return draw(st.one_of(text.map(lambda t: "<" + t), st.integers(1, len(whole) - 1).map(lambda n: whole[:n])))


def not_an_object(draw: st.DrawFn, event: dict[str, Any]) -> str:
    return json.dumps(draw(st.one_of(json_scalars, st.lists(json_values, max_size=3))))


def missing_envelope_part(draw: st.DrawFn, event: dict[str, Any]) -> str:
    del event[draw(st.sampled_from(["detail", "detail-type"]))]
    return _dumps(event)


def unknown_detail_type(draw: st.DrawFn, event: dict[str, Any]) -> str:
    event["detail-type"] = draw(text.filter(lambda t: t not in EVENT_TYPES))
    return _dumps(event)


def missing_metadata(draw: st.DrawFn, event: dict[str, Any]) -> str:
    detail = event["detail"]
    what = draw(st.sampled_from(["metadata", "data", *[f"metadata.{k}" for k in detail["metadata"]]]))
    if what.startswith("metadata."):
        del detail["metadata"][what.split(".", 1)[1]]
    else:
        del detail[what]
    return _dumps(event)


def wrong_schema_version(draw: st.DrawFn, event: dict[str, Any]) -> str:
    # A version this type does not accept (OrderPlaced accepts 1 and 2). Not True or 1.0: pydantic's lax mode
    # reads those as 1 (noted in the report to the contract owner).
    accepted = accepted_versions(event["detail-type"])
    event["detail"]["metadata"]["schema_version"] = draw(
        st.one_of(st.integers().filter(lambda v: v not in accepted), st.sampled_from(["1", "v1", None, [1], {"v": 1}]))
    )
    return _dumps(event)


def oversized_detail(draw: st.DrawFn, event: dict[str, Any]) -> str:
    detail = event["detail"]
    how = draw(st.sampled_from(["padding", "entity_id", "correlation_id", "lines"]))
    if how == "padding":  # more than EventBridge's 256 KB, in a field the envelope does not allow
        detail["metadata"]["padding"] = "x" * draw(st.integers(256 * 1024, 300 * 1024))
    elif how == "entity_id":
        detail["metadata"]["entity_id"] = "e" * draw(st.integers(65, 5000))
    elif how == "correlation_id":
        detail["metadata"]["correlation_id"] = "c" * draw(st.integers(129, 5000))
    elif "lines" in detail["data"]:
        detail["data"]["lines"] = [{"product_id": f"p{i}", "quantity": 1} for i in range(draw(st.integers(51, 500)))]
    else:
        detail["data"]["on_hand"] = draw(st.integers(1_000_000_001, 10**30))
    return _dumps(event)


def wrong_entity(draw: st.DrawFn, event: dict[str, Any]) -> str:
    metadata = event["detail"]["metadata"]
    how = draw(st.sampled_from(["other_id", "bad_id", "entity", "event_type"]))
    if how == "other_id":  # the envelope names another entity than the payload
        metadata["entity_id"] = "fz-other-" + draw(st.integers(0, 10**6).map(str))
    elif how == "bad_id":
        metadata["entity_id"] = draw(non_identifiers)
    elif how == "entity":
        metadata["entity"] = draw(st.sampled_from(["customer", "", "ORDER", "stock"]))
    else:
        metadata["event_type"] = draw(st.sampled_from(sorted(set(EVENT_TYPES) - {event["detail-type"]})))
    return _dumps(event)


def wrong_types(draw: st.DrawFn, event: dict[str, Any]) -> str:
    detail = event["detail"]
    field = draw(st.sampled_from(["entity_version", "occurred_at", "data", "payload_field", "metadata"]))
    if field == "entity_version":
        detail["metadata"]["entity_version"] = draw(
            st.one_of(st.integers(max_value=0), st.sampled_from(["two", None, [2]]))
        )
    elif field == "occurred_at":
        detail["metadata"]["occurred_at"] = draw(st.sampled_from(["yesterday", "", "2026-13-45T99:00:00Z", None, [1]]))
    elif field == "data":
        detail["data"] = draw(st.one_of(json_scalars, st.lists(json_scalars, max_size=3)))
    elif field == "metadata":
        detail["metadata"] = draw(st.one_of(json_scalars, st.lists(json_scalars, max_size=3)))
    else:
        key = draw(st.sampled_from(sorted(k for k in detail["data"] if k not in ("reason", "shortages"))))
        detail["data"][key] = draw(st.one_of(st.dictionaries(text, json_scalars, max_size=2), st.just(nested(50))))
    return _dumps(event)


def not_consumed_here(draw: st.DrawFn, event: dict[str, Any], consumer: str) -> str:
    """A valid event, of a type this consumer does not subscribe to (a misrouted rule)."""
    return _dumps(copy.deepcopy(BASE[draw(st.sampled_from(sorted(set(BASE) - set(CONSUMED[consumer]))))]))


MUTATIONS: list[Mutation] = [
    not_json,
    not_an_object,
    missing_envelope_part,
    unknown_detail_type,
    missing_metadata,
    wrong_schema_version,
    oversized_detail,
    wrong_entity,
    wrong_types,
]


@st.composite
def bad_record(draw: st.DrawFn, consumer: str) -> tuple[str, str]:
    """(mutation name, SQS body) of a record the consumer must reject."""
    event = copy.deepcopy(BASE[draw(st.sampled_from(CONSUMED[consumer]))])
    if draw(st.integers(0, len(MUTATIONS))) == len(MUTATIONS):
        return "not_consumed_here", not_consumed_here(draw, event, consumer)
    mutation = draw(st.sampled_from(MUTATIONS))
    return mutation.__name__, mutation(draw, event)


@dataclass(frozen=True)
class GoodRecord:
    body: str
    key: tuple[str, str]  # (pk, sk) of the item the record must leave in the consumer's table
    expect: tuple[str, Any]  # (attribute, value) that item must hold


class GoodRecords:
    """Valid records whose effect can be seen in the consumer's table, each about a fresh entity.

    One client, and one BatchGetItem per batch to check them: moto calls dominate the run's time.
    """

    TABLE_OF = {
        "InventoryConsumerFunction": "InventoryTable",
        "OrdersConsumerFunction": "OrdersTable",
        "NotificationsConsumerFunction": "NotificationsTable",
    }

    def __init__(self, stack: Stack) -> None:
        self.tables = stack.tables
        self.ids = itertools.count()
        self.client = boto3.client("dynamodb")

    def make(self, consumer: str, count: int) -> list[GoodRecord]:
        ids = [f"fz-good-{next(self.ids)}" for _ in range(count)]
        if consumer == "InventoryConsumerFunction":
            # A cancellation that overtook its placement leaves a RELEASED tombstone: one conditional put. (Not an
            # OrderPlaced: moto copies every table on each transaction, which would make the run quadratic.)
            return [
                GoodRecord(self._body("OrderCancelled", {**DATA_OF["OrderCancelled"], "order_id": i}),
                           (f"RESERVATION#{i}", "RESERVATION"), ("status", "RELEASED"))
                for i in ids
            ]  # fmt: skip
        if consumer == "OrdersConsumerFunction":
            # Reservation outcomes move orders that exist: place them first (PENDING).
            pending = [{"pk": f"ORDER#{i}", "sk": "ORDER", "order_id": i, **ORDERED, "status": "PENDING", "version": 1,
                        "event_type": "OrderPlaced", "correlation_id": "fz"} for i in ids]  # fmt: skip
            if pending:
                puts = [{"PutRequest": {"Item": to_item(item)}} for item in pending]
                self.client.batch_write_item(RequestItems={self.tables["OrdersTable"]: puts})  # type: ignore[dict-item]
            return [
                GoodRecord(self._body("StockReserved", {**DATA_OF["StockReserved"], "order_id": i}),
                           (f"ORDER#{i}", "ORDER"), ("status", "CONFIRMED"))
                for i in ids
            ]  # fmt: skip
        return [
            GoodRecord(self._body("StockUpdated", {**DATA_OF["StockUpdated"], "product_id": i}, version=3),
                       (f"AVAILABILITY#{i}", "AVAILABILITY"), ("version", 3))
            for i in ids
        ]  # fmt: skip

    @staticmethod
    def _body(event_type: str, data: dict[str, Any], version: int = 1) -> str:
        return json.dumps(eventbridge_event(domain_event(event_type, data, version=version)))

    def applied(self, consumer: str, records: list[GoodRecord]) -> list[bool]:
        """For each record, whether its effect is in the consumer's table."""
        if not records:
            return []
        table = self.tables[self.TABLE_OF[consumer]]
        keys = [to_item({"pk": pk, "sk": sk}) for pk, sk in (r.key for r in records)]
        response = self.client.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})  # type: ignore[dict-item]
        items = {(i["pk"], i["sk"]): i for i in map(from_item, response["Responses"][table])}
        return [items.get(r.key, {}).get(r.expect[0]) == r.expect[1] for r in records]


BATCHES_PER_CONSUMER = 300
BAD_PER_BATCH = st.integers(7, 9)  # and 10 minus that many good records


def feeder(consumer: str, functions: FunctionRunner, good: GoodRecords, fed: Counter[str]) -> Callable[[], None]:
    @settings(FUZZ, max_examples=BATCHES_PER_CONSUMER)
    @given(
        bad=BAD_PER_BATCH.flatmap(lambda n: st.lists(bad_record(consumer), min_size=n, max_size=n)),
        order=st.randoms(use_true_random=False),
    )
    def feed(bad: list[tuple[str, str]], order: Any) -> None:
        # GIVEN a batch of 10: malformed records and valid ones, shuffled
        valid = good.make(consumer, 10 - len(bad))
        records: list[tuple[str, GoodRecord | None]] = [(body, None) for _, body in bad] + [(r.body, r) for r in valid]
        order.shuffle(records)
        event = sqs_event([body for body, _ in records])
        # WHEN the consumer handles it
        response = functions.invoke(consumer, event)
        # THEN it answers with a partial batch response naming exactly the malformed records
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        expected = {r["messageId"] for r, (_, ok) in zip(event["Records"], records, strict=True) if ok is None}
        assert failed == expected
        # AND every valid record of the batch was applied
        assert all(good.applied(consumer, valid))
        fed.update(name for name, _ in bad)

    return feed  # type: ignore[no-any-return]


def test_inbox_batches_report_every_malformed_record_and_apply_every_valid_one(
    stack: Stack, functions: FunctionRunner
) -> None:
    good = GoodRecords(stack)
    fed: Counter[str] = Counter()
    for consumer in CONSUMED:
        feeder(consumer, functions, good, fed)()
    # THEN thousands of malformed records of every kind went through (at least 7 in each of 900 batches)
    assert sum(fed.values()) >= 6_300, fed
    assert set(fed) == {m.__name__ for m in MUTATIONS} | {"not_consumed_here"}, fed


# ---------------------------------------------------------------- API bodies
@st.composite
def bad_order_body(draw: st.DrawFn) -> tuple[str, str]:
    """(raw body, the field a 400 must name) for POST /orders."""
    body: dict[str, Any] = copy.deepcopy(ORDER)
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return draw(st.one_of(text.map(lambda t: "{" + t).filter(_not_json), st.just(""))), "body"
    if kind == 1:
        return json.dumps(draw(st.one_of(json_scalars, st.lists(json_values, max_size=3)))), "body"
    if kind == 2:
        del body["lines"]
        return json.dumps(body), "lines"
    if kind == 3:  # a body naming a customer, even a well-formed one: the customer is the token's subject
        body["customer_id"] = draw(st.one_of(st.just(CUSTOMER), non_identifiers, not_int))
        return json.dumps(body), "customer_id"
    if kind == 4:  # deep nesting where a string belongs (deeper than MAX_DEPTH: see the parser-breaking bodies)
        depth = draw(st.integers(2, MAX_DEPTH - 3))  # inside the body, its lines and a line: 3 levels
        body["lines"] = [{"product_id": nested(depth), "quantity": 1}]
        return json.dumps(body), "lines.0.product_id"
    if kind == 5:
        body["lines"] = draw(
            st.one_of(
                st.just([]),
                json_scalars,
                st.dictionaries(text, json_scalars, max_size=3),
                st.just([LINES[0], LINES[0]]),
                st.integers(51, 300).map(lambda n: [{"product_id": f"p{i}", "quantity": 1} for i in range(n)]),
            )
        )
        return json.dumps(body), "lines"
    if kind == 6:
        body["lines"] = [draw(st.one_of(json_scalars, st.lists(json_scalars, max_size=2)))]
        return json.dumps(body), "lines.0"
    if kind == 7:
        quantity = draw(st.one_of(not_int, st.integers(max_value=0), st.integers(min_value=10_001)))
        body["lines"] = [{"product_id": "fz-p1", "quantity": quantity}]
        return json.dumps(body), "lines.0.quantity"
    if kind == 8:
        body["lines"] = [{"product_id": draw(st.one_of(non_identifiers, st.integers(), st.none())), "quantity": 1}]
        return json.dumps(body), "lines.0.product_id"
    if kind == 9:
        line = {"product_id": "fz-p1", "quantity": 1}
        del line[draw(st.sampled_from(["product_id", "quantity"]))]
        body["lines"] = [line]
        return json.dumps(body), "lines.0." + ("quantity" if "product_id" in line else "product_id")
    taken = {"customer_id", "lines", "product_id", "quantity"}  # customer_id: kind 3
    extra = draw(st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True).filter(lambda k: k not in taken))
    if kind == 10:
        body[extra] = draw(json_values)
        return json.dumps(body), extra
    body["lines"] = [{"product_id": "fz-p1", "quantity": 1, extra: draw(json_values)}]
    return json.dumps(body), f"lines.0.{extra}"


@st.composite
def bad_stock_body(draw: st.DrawFn, field: str) -> tuple[str, str]:
    """(raw body, the field a 400 must name) for PUT .../stock (`on_hand`) or POST .../adjustments (`delta`)."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.one_of(text.map(lambda t: "{" + t).filter(_not_json), st.just(""))), "body"
    if kind == 1:
        return json.dumps(draw(st.one_of(json_scalars, st.lists(json_values, max_size=3)))), "body"
    if kind == 2:
        return json.dumps({}), field
    if kind == 3:
        extra = draw(st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True).filter(lambda k: k != field))
        return json.dumps({field: 5, extra: draw(json_values)}), extra
    low = 0 if field == "on_hand" else -1_000_000_000
    out_of_range = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=1_000_000_001))
    wrong = st.one_of(not_int, out_of_range, st.just(nested(draw(st.integers(2, MAX_DEPTH - 1)))))
    if field == "delta":
        wrong = st.one_of(wrong, st.just(0))
    return json.dumps({field: draw(wrong)}), field


def _not_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


# With the inbox records (>= 6,300), more than 10,000 malformed inputs in all.
ORDER_BODIES = 1_900
STOCK_BODIES = 900  # per inventory route


def assert_bad_request(response: dict[str, Any], field: str) -> None:
    assert response["statusCode"] == 400, response
    body = json.loads(response["body"])
    assert field in [e["field"] for e in body["errors"]], body
    assert field in body["message"]


def test_api_bodies_that_break_the_contract_are_a_400_naming_the_field(stack: Stack, functions: FunctionRunner) -> None:
    fed: Counter[str] = Counter()

    @settings(FUZZ, max_examples=ORDER_BODIES)
    @given(case=bad_order_body())
    def place(case: tuple[str, str]) -> None:
        # GIVEN a malformed order WHEN it is posted THEN the answer is 400 naming the field
        raw, field = case
        event = http_event("POST", "/orders", raw_body=raw, caller=CUSTOMER)
        assert_bad_request(functions.invoke("OrdersApiFunction", event), field)
        fed["POST /orders"] += 1

    @settings(FUZZ, max_examples=STOCK_BODIES)
    @given(case=bad_stock_body("on_hand"))
    def set_stock(case: tuple[str, str]) -> None:
        raw, field = case
        event = http_event(
            "PUT",
            "/products/fz-p1/stock",
            route="/products/{product_id}/stock",
            path_parameters={"product_id": "fz-p1"},
            raw_body=raw,
            **WAREHOUSE,
        )
        assert_bad_request(functions.invoke("InventoryApiFunction", event), field)
        fed["PUT /products/{product_id}/stock"] += 1

    @settings(FUZZ, max_examples=STOCK_BODIES)
    @given(case=bad_stock_body("delta"))
    def adjust(case: tuple[str, str]) -> None:
        raw, field = case
        event = http_event(
            "POST",
            "/products/fz-p1/stock/adjustments",
            route="/products/{product_id}/stock/adjustments",
            path_parameters={"product_id": "fz-p1"},
            raw_body=raw,
            **WAREHOUSE,
        )
        assert_bad_request(functions.invoke("InventoryApiFunction", event), field)
        fed["POST /products/{product_id}/stock/adjustments"] += 1

    place()
    set_stock()
    adjust()
    # THEN nothing was stored, and thousands of bodies were tried on each service
    assert stack.scan("OrdersTable") == []
    assert stack.scan("InventoryTable") == []
    assert sum(fed.values()) == ORDER_BODIES + 2 * STOCK_BODIES, fed


# ---------------------------------------------------------------- bodies that broke a parser
BODY_ROUTES = [  # (function, method, path, route, a valid body)
    ("OrdersApiFunction", "POST", "/orders", "/orders", ORDER),
    ("InventoryApiFunction", "PUT", "/products/fz-p1/stock", "/products/{product_id}/stock", {"on_hand": 5}),
    (
        "InventoryApiFunction",
        "POST",
        "/products/fz-p1/stock/adjustments",
        "/products/{product_id}/stock/adjustments",
        {"delta": 1},
    ),
]
ERROR_KEYS = {"message", "errors", "order_status"}  # the project's error shape (converge.http.error_response)


def _request(route: tuple[str, str, str, str, Any], raw: str, **fields: Any) -> dict[str, Any]:
    """A request to `route` with body `raw`, from a caller the route serves (the warehouse on an admin route)."""
    _, method, path, template, _ = route
    caller = WAREHOUSE if f"{method} {template}" in ADMIN_ROUTES else {"caller": CUSTOMER}
    params = {"product_id": "fz-p1"}
    event = http_event(method, path, route=template, path_parameters=params, raw_body=raw, **caller)
    event.update(fields)
    return event


def _b64(raw: bytes) -> dict[str, Any]:
    return {"isBase64Encoded": True, "body": base64.b64encode(raw).decode()}


def assert_refused(response: dict[str, Any], status: int, type_: str, field: str = "body") -> dict[str, Any]:
    """A 4xx in the one shape, whose errors name the part at fault and the problem's type."""
    assert response["statusCode"] == status, response
    body = json.loads(response["body"])
    assert set(body) <= ERROR_KEYS, body
    assert [(e["field"], e["type"]) for e in body["errors"]] == [(field, type_)], body
    assert field in body["message"], body
    return body  # type: ignore[no-any-return]


PARSER_BREAKERS: dict[str, tuple[Callable[[Any], dict[str, Any]], int, str, str]] = {
    # name: (event fields from a valid body, status, error type, a word the message must hold)
    "nested 100,000 deep": (lambda _: {"body": "[" * 60_000}, 400, "json_too_deep", "nested deeper"),
    "nested one past MAX_DEPTH in a field": (
        lambda valid: {"body": json.dumps({**valid, "x": nested(MAX_DEPTH)})}, 400, "json_too_deep", "nested deeper",
    ),
    "a 5,000-digit integer": (lambda _: {"body": '{"on_hand": ' + "9" * 5000 + "}"}, 400, "number_too_long", "number"),
    "a 5,000-digit float": (lambda _: {"body": '{"delta": 1.' + "5" * 5000 + "}"}, 400, "number_too_long", "number"),
    "bytes that are not UTF-8": (lambda _: _b64(b'{"x": "\xff\xfe"}'), 400, "invalid_utf8", "UTF-8"),
    "a lone surrogate": (lambda _: {"body": '{"customer_id": "\ud800"}'}, 400, "invalid_utf8", "UTF-8"),
    "invalid base64": (lambda _: {"isBase64Encoded": True, "body": "!!not base64!!"}, 400, "invalid_base64", "base64"),
    "base64 missing its padding": (lambda _: {"isBase64Encoded": True, "body": "eyJ"}, 400, "invalid_base64", "base64"),
    "a body over MAX_BODY_BYTES": (
        lambda valid: {"body": json.dumps({**valid, "pad": "x" * MAX_BODY_BYTES})}, 413, "body_too_large", "bytes",
    ),
    "a base64 body over MAX_BODY_BYTES": (
        lambda valid: _b64(json.dumps({**valid, "pad": "é" * MAX_BODY_BYTES}).encode()),
        413, "body_too_large", "characters",
    ),
}  # fmt: skip


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: f"{r[1]} {r[3]}")
@pytest.mark.parametrize("case", sorted(PARSER_BREAKERS))
def test_bodies_that_broke_the_parser_are_a_4xx_naming_the_problem(
    stack: Stack, functions: FunctionRunner, route: tuple[str, str, str, str, Any], case: str
) -> None:
    fields, status, type_, word = PARSER_BREAKERS[case]
    # GIVEN a small body that used to raise inside the parser (RecursionError, ValueError, UnicodeDecodeError, ...)
    event = _request(route, "", **fields(route[4]))
    # WHEN it is sent to a route that reads its body
    response = functions.invoke(route[0], event)
    # THEN it is a 4xx in the one shape, naming the body and the problem, and nothing was stored
    body = assert_refused(response, status, type_)
    assert word in body["message"], body
    assert stack.scan("OrdersTable") == stack.scan("InventoryTable") == []


def test_the_limits_are_where_they_are_documented(stack: Stack, functions: FunctionRunner) -> None:
    route = BODY_ROUTES[0]
    # GIVEN bodies exactly at each limit, and one past it
    at_depth = json.dumps({**ORDER, "x": nested(MAX_DEPTH - 1)})
    at_size = json.dumps({**ORDER, "x": ""})
    at_size = json.dumps({**ORDER, "x": "x" * (MAX_BODY_BYTES - len(at_size.encode()))})
    at_number = json.dumps({**ORDER, "x": int("9" * MAX_NUMBER_CHARS)})
    assert len(at_size.encode()) == MAX_BODY_BYTES
    # WHEN they are posted
    answers = {raw: functions.invoke(route[0], _request(route, raw)) for raw in (at_depth, at_size, at_number)}
    # THEN at the limit the guard lets them through: the validator names the extra field, as for any body
    for response in answers.values():
        assert_bad_request(response, "x")
    # AND one past each limit is refused for the limit
    assert_refused(functions.invoke(route[0], _request(route, at_size + " ")), 413, "body_too_large")
    past_number = json.dumps({**ORDER, "x": int("9" * (MAX_NUMBER_CHARS + 1))})
    assert_refused(functions.invoke(route[0], _request(route, past_number)), 400, "number_too_long")


@settings(FUZZ, max_examples=200)
@given(brackets=st.text(alphabet="[]{}", min_size=MAX_DEPTH + 1, max_size=500), quoted=st.booleans())
def test_brackets_inside_strings_do_not_count_as_nesting(brackets: str, quoted: bool) -> None:
    # GIVEN any run of brackets, inside a string or as the JSON itself
    raw = json.dumps({"customer_id": brackets}) if quoted else brackets
    # WHEN the bounded parser reads it
    try:
        parsed = bounded_json(raw)
    except RequestRejected as exc:
        outcome = exc.type
    except ValueError:
        outcome = "json_invalid"
    else:
        outcome = "parsed"
    # THEN a string's brackets are text (parsed), and brackets outside strings are refused or invalid, never a crash
    if quoted:
        assert (outcome, parsed) == ("parsed", {"customer_id": brackets})
    else:
        assert outcome in {"json_too_deep", "json_invalid", "parsed"}


@pytest.mark.parametrize("content_type", ["Application/JSON", "APPLICATION/JSON; charset=UTF-8", "application/json"])
def test_the_content_type_is_case_insensitive(stack: Stack, functions: FunctionRunner, content_type: str) -> None:
    # GIVEN a valid order sent with the media type in capitals (media types are case-insensitive, RFC 9110)
    event = http_event("POST", "/orders", body=ORDER, headers={"content-type": content_type}, caller=CUSTOMER)
    # WHEN it is posted THEN the order is placed
    assert functions.invoke("OrdersApiFunction", event)["statusCode"] == 201


def test_a_body_not_sent_as_json_is_a_415_in_the_one_shape(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order sent as text/plain
    event = http_event("POST", "/orders", body=ORDER, headers={"content-type": "text/plain"}, caller=CUSTOMER)
    # WHEN it is posted THEN it is a 415 naming the content-type (not Powertools' {"statusCode", "detail"})
    body = assert_refused(functions.invoke("OrdersApiFunction", event), 415, "unsupported_content_type", "content-type")
    assert "text/plain" in body["message"]


@pytest.mark.parametrize("function", sorted(f for f, (_, kind) in function_kinds().items() if kind == "api"))
def test_no_route_is_a_404_in_the_one_shape(stack: Stack, functions: FunctionRunner, function: str) -> None:
    # GIVEN a path and a method no route of the function serves
    for method, path in [("GET", "/nowhere"), ("DELETE", "/orders"), ("PATCH", "/products/p-1/stock")]:
        # WHEN it is requested THEN it is a 404 naming the request (not Powertools' {"statusCode", "message"})
        body = assert_refused(functions.invoke(function, http_event(method, path)), 404, "no_route", "route")
        assert f"no route for {method} {path}" in body["message"]


# ---------------------------------------------------------------- requests without the right caller
NO_CALLER_KINDS = [  # how a request can reach a function without a verified caller (converge.authz.caller_of)
    "no authorizer",
    "authorizer not an object",
    "another authorizer's context",
    "jwt not an object",
    "claims not an object",
    "no subject",
    "subject not an identifier",
]
path_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,30}", fullmatch=True)
not_objects = st.one_of(json_scalars, st.lists(json_scalars, max_size=3))
bad_subjects = st.one_of(
    non_identifiers,
    st.from_regex(r"[A-Za-z0-9]{1,10}", fullmatch=True).map(lambda s: s + "\n"),  # `$` would accept it; fullmatch not
    not_int.filter(lambda v: not isinstance(v, str)),
    st.dictionaries(text, json_scalars, max_size=2),
)
# Group and scope names near "admin" that are not it, and claims that name admin where no admin is read from.
NOT_ADMIN_WORDS = ["admins", "Admin", "ADMIN", "administrators", "warehouse", "customers", "admin:read", "no-admin"]
NOT_ADMIN_SCOPES = ["converge/admins", "converge/Admin", "converge/read", "admin", "converge/admin/x", "openid"]
ELSEWHERE = ["groups", "roles", "custom:role", "scp", "cognito:roles", "admin"]


@st.composite
def without_a_caller(draw: st.DrawFn) -> tuple[str, Any]:
    """(kind, the request's `requestContext.authorizer`, None for none) of a request no caller can be read from."""
    kind = draw(st.sampled_from(NO_CALLER_KINDS))
    context = jwt_authorizer_context(draw(path_ids), admin=draw(st.booleans()))  # admin or not: no caller either way
    claims = context["claims"]
    if kind == "no authorizer":
        return kind, None
    if kind == "authorizer not an object":
        return kind, draw(not_objects)
    if kind == "another authorizer's context":  # a Lambda or IAM authorizer's, not the JWT authorizer's claims
        return kind, {draw(st.sampled_from(["lambda", "iam"])): {**claims, "admin": True}}
    if kind == "jwt not an object":
        return kind, {"jwt": draw(not_objects)}
    if kind == "claims not an object":
        return kind, {"jwt": {"claims": draw(not_objects), "scopes": ["converge/admin"]}}
    if kind == "no subject":
        del claims["sub"]
    else:
        claims["sub"] = draw(bad_subjects)
    return kind, {"jwt": context}


@st.composite
def not_an_admin(draw: st.DrawFn, subjects: list[str]) -> dict[str, Any]:
    """`requestContext.authorizer` of a verified caller outside the admin group and scope."""
    subject = draw(st.one_of(st.sampled_from(subjects), path_ids))
    context = jwt_authorizer_context(subject)
    claims = context["claims"]
    groups = draw(st.lists(st.sampled_from(NOT_ADMIN_WORDS), max_size=3))
    if groups:  # as API Gateway renders a list claim, or as a list
        claims["cognito:groups"] = draw(st.sampled_from([f"[{' '.join(groups)}]", f"[{', '.join(groups)}]", groups]))
    scopes = draw(st.lists(st.sampled_from(NOT_ADMIN_SCOPES), max_size=3))
    if scopes:
        if draw(st.booleans()):
            context["scopes"] = scopes
        else:
            claims["scope"] = " ".join(scopes)
    for name in draw(st.lists(st.sampled_from(ELSEWHERE), max_size=2, unique=True)):
        claims.setdefault(name, draw(st.sampled_from(["admin", "[admin]", "converge/admin", "true"])))
    return {"jwt": context}


@st.composite
def request_to(draw: st.DrawFn, routes: list[Route], seeded: dict[str, str]) -> tuple[Route, bool, dict[str, Any]]:
    """(route, whether the request is well-formed, an HTTP API request to it) with no authorizer yet:
    the path's ids are the seeded resources' or others, the body the route's valid one or anything."""
    route = draw(st.sampled_from(routes))
    params = {name: draw(st.one_of(st.just(seeded[name]), path_ids)) for name in re.findall(r"{(\w+)}", route.path)}
    valid = next((body for _, m, _, t, body in BODY_ROUTES if f"{m} {t}" == route.route_key), None)
    raw = draw(st.one_of(st.none(), st.just(json.dumps(valid)), json_values.map(json.dumps), text))
    path = re.sub(r"{(\w+)}", lambda m: params[m[1]], route.path)
    event = http_event(route.method, path, route=route.path, path_parameters=params or None, raw_body=raw, caller=None)
    return route, raw == (None if valid is None else json.dumps(valid)), event


def assert_refused_for_the_caller(response: dict[str, Any], status: int, type_: str) -> None:
    """The status, in the one shape, naming the authorization (no 5xx, no traceback, no Powertools shape)."""
    assert response["statusCode"] == status, response
    body = json.loads(response["body"])
    assert set(body) <= ERROR_KEYS, body
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("authorization", type_)], body


def seed_a_customers_resources(functions: FunctionRunner) -> dict[str, str]:
    """A product in stock, and CUSTOMER's order with its shipment and a notification; the ids of each."""
    stock = http_event(
        "PUT", "/products/fz-p1/stock", route="/products/{product_id}/stock", path_parameters={"product_id": "fz-p1"},
        body={"on_hand": 5}, **WAREHOUSE,
    )  # fmt: skip
    assert functions.invoke("InventoryApiFunction", stock)["statusCode"] == 200
    placed = functions.invoke("OrdersApiFunction", http_event("POST", "/orders", body=ORDER, caller=CUSTOMER))
    assert placed["statusCode"] == 201
    order_id = json.loads(placed["body"])["order_id"]
    confirmed = {"order_id": order_id, **ORDERED, "status": "CONFIRMED", "confirmed": True}
    for consumer in ("ShippingConsumerFunction", "NotificationsConsumerFunction"):
        event = sqs_event([json.dumps(eventbridge_event(domain_event("OrderConfirmed", confirmed, version=2)))])
        assert functions.invoke(consumer, event) == {"batchItemFailures": []}
    return {"order_id": order_id, "product_id": "fz-p1", "customer_id": CUSTOMER}


def test_every_route_refuses_a_request_without_a_caller_or_a_customer_on_an_admin_route(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN every route of the template, and a customer's order, shipment, notification and stock to refuse to touch
    routes = routes_from_template(stack.template)
    admin_routes = [r for r in routes if r.route_key in ADMIN_ROUTES]
    assert {r.route_key for r in admin_routes} == ADMIN_ROUTES
    seeded = seed_a_customers_resources(functions)
    before = {t: stack.scan(t) for t in sorted(stack.tables)}
    fed: Counter[str] = Counter()

    @settings(FUZZ, max_examples=700)
    @given(request=request_to(routes, seeded), caller=without_a_caller())
    def unauthenticated(request: tuple[Route, bool, dict[str, Any]], caller: tuple[str, Any]) -> None:
        # WHEN a request reaches the function without a caller it can verify (any route, ids, body)
        route, _, event = request
        kind, authorizer = caller
        if authorizer is not None:
            event["requestContext"]["authorizer"] = authorizer
        # THEN it is a 401 in the one shape, naming the authorization, before the body is looked at
        assert_refused_for_the_caller(functions.invoke(route.function, event), 401, "unauthorized")
        fed.update([route.route_key, kind])

    @settings(FUZZ, max_examples=300)
    @given(request=request_to(admin_routes, seeded), caller=not_an_admin([CUSTOMER, "fz-warehouse"]))
    def customer(request: tuple[Route, bool, dict[str, Any]], caller: dict[str, Any]) -> None:
        # WHEN a verified caller outside the admin group and scope (the order's own customer too) calls an admin route
        route, valid, event = request
        event["requestContext"]["authorizer"] = caller
        response = functions.invoke(route.function, event)
        # THEN it is a 403 in the one shape naming the authorization, whatever its body (the route's declared
        #      security is checked before the body is validated: a customer learns nothing about it)
        assert_refused_for_the_caller(response, 403, "forbidden")
        fed.update([f"non-admin {route.route_key}"] + ["non-admin 403"] * valid)

    unauthenticated()
    customer()
    # AND nothing changed, and every route and every way of lacking a caller was tried, and admin routes refused
    assert {t: stack.scan(t) for t in sorted(stack.tables)} == before
    assert set(fed) == {
        *(r.route_key for r in routes),
        *NO_CALLER_KINDS,
        *(f"non-admin {k}" for k in ADMIN_ROUTES),
        "non-admin 403",
    }, fed


# ---------------------------------------------------------------- events of another kind
FIXTURES = {p.name: json.loads(p.read_text()) for p in sorted(EVENTS_DIR.glob("*.json"))}
SCHEDULED_EVENT = "an EventBridge scheduled event"
# What each function is wired to, as UnexpectedEventError names it, by its kind in the service contracts.
EXPECTED_BY_KIND = {
    "api": HTTP_API_REQUEST,
    "consumer": SQS_BATCH,
    "publisher": STREAM_BATCH,
    "scheduled": SCHEDULED_EVENT,
    "sweep": "a task of the sweep's state machine",
}
KIND_OF_FUNCTION = {logical_id: EXPECTED_BY_KIND[kind] for logical_id, (_, kind) in function_kinds().items()}
FUNCTIONS_OF_KIND = {
    kind: sorted(f for f, k in KIND_OF_FUNCTION.items() if k == kind) for kind in EXPECTED_BY_KIND.values()
}
REST_V1_REQUEST: dict[str, Any] = {
    "resource": "/orders",
    "path": "/orders",
    "httpMethod": "POST",
    "headers": {"content-type": "application/json"},
    "requestContext": {"httpMethod": "POST", "path": "/prod/orders", "stage": "prod", "requestId": "r-1"},
    "body": json.dumps(ORDER),
    "isBase64Encoded": False,
}
ALB_REQUEST: dict[str, Any] = {
    "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/t/1"}},
    "httpMethod": "POST",
    "path": "/orders",
    "headers": {"content-type": "application/json"},
    "body": json.dumps(ORDER),
    "isBase64Encoded": False,
}
# (name, event, the kind the message must say it got)
NOT_BATCHES: list[tuple[str, Any, str]] = [
    ("REST v1 request", REST_V1_REQUEST, "an API Gateway REST API (payload format 1.0) request"),
    ("ALB request", ALB_REQUEST, "an ALB request"),
    ("list", [FIXTURES["OrdersApiFunction.place-order.json"]], "a JSON list"),
    ("null", None, "null"),
    ("string", "OrdersApiFunction.place-order.json", "a JSON string"),
]
# What a fixture is called when received, where that is not the kind its function is wired to.
RECEIVED = {
    "ReconcilerFunction.full-sweep.json": "an object with keys [mode]",
    "ReconcilerFunction.scheduled.json": "an EventBridge event (Scheduled Event)",
    "ReconcilerSweepFunction.start.json": "an object with keys [action, execution, request]",
}


def foreign_events(function: str) -> list[tuple[str, Any, str]]:
    """Every fixture of a kind `function` is not wired to, and the shapes no trigger of this stack delivers."""
    expected = KIND_OF_FUNCTION[function]
    return [
        (name, event, RECEIVED.get(name, KIND_OF_FUNCTION[name.split(".")[0]]))
        for name, event in FIXTURES.items()
        if KIND_OF_FUNCTION[name.split(".")[0]] != expected
    ] + NOT_BATCHES


def assert_refused_in_one_line(functions: FunctionRunner, function: str, event: Any, got: str) -> None:
    # WHEN the function is invoked with it
    with pytest.raises(UnexpectedEventError) as raised:
        functions.invoke(function, event)
    # THEN it raised the one clear error: one line naming the kind expected and the kind received
    message = str(raised.value)
    assert "\n" not in message
    assert message == f"expected {KIND_OF_FUNCTION[function]}, got {got}"


API_AND_CONSUMERS = [f for f, kind in KIND_OF_FUNCTION.items() if kind in (HTTP_API_REQUEST, SQS_BATCH)]


@pytest.mark.parametrize("function", API_AND_CONSUMERS)
def test_api_functions_and_consumers_refuse_every_other_event_kind_in_one_line(
    stack: Stack, functions: FunctionRunner, function: str
) -> None:
    for _, event, got in foreign_events(function):
        # GIVEN an event of another kind (a miswired trigger, a manual invoke with the wrong fixture)
        assert_refused_in_one_line(functions, function, copy.deepcopy(event), got)
    # AND nothing of any of them was stored
    assert all(stack.scan(t) == [] for t in ("OrdersTable", "InventoryTable", "NotificationsTable"))


@pytest.mark.parametrize("function", FUNCTIONS_OF_KIND[STREAM_BATCH])
def test_publishers_refuse_batches_of_other_records_in_one_line(
    stack: Stack, functions: FunctionRunner, function: str
) -> None:
    # GIVEN each SQS fixture (a batch, of records without stream data: once skipped, so silently dropped)
    for _, event, got in foreign_events(function):
        if got == SQS_BATCH:
            assert_refused_in_one_line(functions, function, copy.deepcopy(event), got)
    # THEN nothing reached the bus
    assert stack.events_on_bus() == []


@pytest.mark.parametrize("function", FUNCTIONS_OF_KIND[STREAM_BATCH])
def test_publishers_refuse_events_that_are_not_batches_in_one_line(
    stack: Stack, functions: FunctionRunner, function: str
) -> None:
    for _, event, got in foreign_events(function):
        if got != SQS_BATCH:
            # GIVEN an HTTP request, a scheduled event, a list, null, a string
            assert_refused_in_one_line(functions, function, copy.deepcopy(event), got)


@pytest.mark.parametrize("name", [n for n, _, got in foreign_events("OrdersPublisherFunction") if got != SQS_BATCH])
def test_the_layer_refuses_events_that_are_not_stream_batches_in_one_line(name: str) -> None:
    # GIVEN an event that is no DynamoDB stream batch, as the publisher's @event_source wraps it
    event = {n: e for n, e, _ in foreign_events("OrdersPublisherFunction")}[name]
    # WHEN the layer is asked for its stream records THEN it raises the one clear error, in one line
    with pytest.raises(UnexpectedEventError, match=rf"^expected {STREAM_BATCH}, got [^\n]+$"):
        stream_records(DynamoDBStreamEvent(event))


@pytest.mark.parametrize("function", ["ReconcilerFunction", "ReconcilerSweepFunction"])
def test_the_reconcilers_refuse_every_other_event_kind_in_one_line(
    stack: Stack, functions: FunctionRunner, function: str
) -> None:
    for _, event, got in foreign_events(function):
        # GIVEN an HTTP request, an SQS or stream batch, a list, null, a string, the other reconciler's input
        assert_refused_in_one_line(functions, function, copy.deepcopy(event), got)


@pytest.mark.parametrize("function", [f for f, kind in KIND_OF_FUNCTION.items() if kind != SCHEDULED_EVENT])
def test_every_fixture_of_a_functions_own_kind_is_answered_without_a_5xx(
    stack: Stack, functions: FunctionRunner, function: str
) -> None:
    for name, event in FIXTURES.items():
        if KIND_OF_FUNCTION[name.split(".")[0]] != KIND_OF_FUNCTION[function]:
            continue
        # GIVEN a fixture of the kind this function is wired to (its own, or another service's)
        # WHEN the function handles it
        response = functions.invoke(function, copy.deepcopy(event))
        # THEN an API answers below 500 (another service's route: a 404 in the one shape), a batch is reported
        if KIND_OF_FUNCTION[function] == HTTP_API_REQUEST:
            assert response["statusCode"] < 500, (name, response)
            if response["statusCode"] >= 400:
                assert set(json.loads(response["body"])) <= ERROR_KEYS, (name, response)
        elif KIND_OF_FUNCTION[function] == EXPECTED_BY_KIND["sweep"]:
            # a sweep task answers what the state machine reads next (here: the sweep started, with its segments)
            assert response["sweep_id"], (name, response)
            assert response["segments"], (name, response)
        else:
            assert set(response) == {"batchItemFailures"}, (name, response)


def test_inbox_records_that_break_the_json_parser_fail_alone(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a batch with a record nested 100,000 deep, one with a 5,000-digit number, and a valid one
    good = GoodRecords(stack).make("OrdersConsumerFunction", 1)
    event = sqs_event(["[" * 100_000, '{"detail-type": ' + "9" * 5000 + "}", good[0].body])
    # WHEN the consumer handles it
    response = functions.invoke("OrdersConsumerFunction", event)
    # THEN the two are batch item failures and the valid one is applied
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed == {r["messageId"] for r in event["Records"][:2]}
    assert GoodRecords(stack).applied("OrdersConsumerFunction", good) == [True]


def test_a_stream_record_with_an_unknown_type_descriptor_fails_alone(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a stream batch of valid order inserts, one of whose images carries descriptors DynamoDB never writes
    stack.put_item("OrdersTable", order_item("fz-s1", 1))
    stack.put_item("OrdersTable", order_item("fz-s2", 1))
    stack.put_item("OrdersTable", order_item("fz-s3", 1))
    event = lambda_stream_event(stack, "OrdersTable")
    broken: tuple[dict[str, Any], ...] = ({"X": "1"}, {}, {"N": "not a number"}, {"M": 1})
    for record, value in zip(event["Records"][1:2] * len(broken), broken, strict=True):
        record = copy.deepcopy(record)
        record["dynamodb"]["NewImage"]["customer_id"] = value
        # WHEN the publisher handles the batch with that record
        batch = {"Records": [event["Records"][0], record, event["Records"][2]]}
        response = functions.invoke("OrdersPublisherFunction", batch)
        # THEN only that record is a batch item failure, and the rest of the batch is published
        assert response == {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}, value
        published = sorted(e["detail"]["data"]["order_id"] for e in stack.events_on_bus())
        assert published == ["fz-s1", "fz-s3"], value
