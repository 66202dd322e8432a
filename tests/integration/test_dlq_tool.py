"""The DLQ tool: a person sees why a message was parked and sends it back once the cause is fixed."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.support.events import domain_event, eventbridge_event
from tests.support.stack import FunctionRunner, Stack
from tools.dlq import DeadLetterQueues, main

SCHEDULED = json.loads(
    (Path(__file__).resolve().parents[2] / "events" / "ReconcilerFunction.scheduled.json").read_text()
)


def tool(stack: Stack) -> DeadLetterQueues:
    return DeadLetterQueues(boto3.session.Session(), stack.queues, stack.bus_name, stack.table("ReconcilerStateTable"))


def test_parked_poison_is_listed_with_its_reason_and_redriven_by_hand(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a message in the orders DLQ that the reconciler parked as poison
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.queues["OrdersDLQ"], MessageBody="not json at all")
    functions.invoke("ReconcilerFunction", SCHEDULED)
    dlqs = tool(stack)
    # WHEN a person looks at the DLQ
    (letter,) = dlqs.letters("OrdersDLQ")
    # THEN the tool shows the message with the reason it was parked for
    assert letter.body == "not json at all"
    assert letter.parked_reason is not None
    assert "Expecting value" in letter.parked_reason
    # WHEN the person redrives it
    assert dlqs.redrive("OrdersDLQ").moved == 1
    # THEN it is back in the orders inbox, gone from the DLQ, and no longer parked
    inbox = sqs.receive_message(QueueUrl=stack.queues["OrdersInbox"]).get("Messages", [])
    assert [m["Body"] for m in inbox] == ["not json at all"]
    assert dlqs.depth("OrdersDLQ") == 0
    assert dlqs.parked() == {}


def test_delivery_dlq_messages_go_back_onto_the_bus(stack: Stack) -> None:
    # GIVEN an event EventBridge could not deliver to an inbox
    event = domain_event("OrderPlaced", {"order_id": "o1", "customer_id": "c1", "status": "PENDING",
                                         "lines": [{"product_id": "p1", "quantity": 1}]})  # fmt: skip
    boto3.client("sqs").send_message(
        QueueUrl=stack.queues["DeliveryDLQ"], MessageBody=json.dumps(eventbridge_event(event))
    )
    # WHEN it is redriven by hand
    moved = tool(stack).redrive("DeliveryDLQ").moved
    # THEN it is on the bus again, unchanged
    assert moved == 1
    (redelivered,) = stack.events_on_bus()
    assert redelivered["detail"] == event.detail()
    assert redelivered["source"] == "converge.orders"


def test_a_stream_batch_record_is_never_sent_to_an_inbox(stack: Stack) -> None:
    # GIVEN the orders DLQ holding a valid event and a stream mapping's OnFailure record
    sqs = boto3.client("sqs")
    dlq = stack.queues["OrdersDLQ"]
    reserved = domain_event(
        "StockReserved", {"order_id": "o9", "lines": [{"product_id": "p1", "quantity": 1}], "status": "RESERVED"}
    )
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(eventbridge_event(reserved)))
    batch = {"shardId": "shardId-1", "startSequenceNumber": "1", "endSequenceNumber": "9"}
    on_failure = {"requestContext": {"condition": "RetryAttemptsExhausted"}, "DDBStreamBatchInfo": batch}
    stream_record = sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(on_failure))["MessageId"]
    # WHEN a person redrives the whole DLQ
    result = tool(stack).redrive("OrdersDLQ")
    # THEN only the event reaches the inbox; the stream record stays in the DLQ, and the tool says why
    inbox = sqs.receive_message(QueueUrl=stack.queues["OrdersInbox"], MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["detail-type"] for m in inbox] == ["StockReserved"]
    assert result.moved == 1
    assert list(result.refused) == [stream_record]
    assert "stream batch" in result.refused[stream_record]
    assert tool(stack).depth("OrdersDLQ") == 1


def test_a_long_redrive_moves_each_letter_once_and_resets_its_redrive_count(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN 25 undeliverable events in the delivery DLQ, each already redriven once by the reconciler
    sqs = boto3.client("sqs")
    dlq = stack.queues["DeliveryDLQ"]
    events = [
        domain_event("StockUpdated", {"product_id": f"p{n}", "on_hand": n, "reserved": 0, "available": n})
        for n in range(25)
    ]
    for event in events:
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(eventbridge_event(event)))
    functions.invoke("ReconcilerFunction", SCHEDULED)
    assert len([i for i in stack.scan("ReconcilerStateTable") if i["pk"] == "REDRIVE"]) == 25
    for event in events:  # they failed again
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(eventbridge_event(event)))
    stack.events_on_bus()  # what the reconciler put on the bus, set aside
    # WHEN a person redrives the DLQ by hand (after fixing the cause)
    result = tool(stack).redrive("DeliveryDLQ")
    # THEN every letter went back onto the bus exactly once, the DLQ is empty,
    # and each event's redrive count is forgotten: it gets its full number of tries again
    assert result.moved == 25
    assert sorted(e["detail"]["data"]["product_id"] for e in stack.events_on_bus()) == sorted(
        f"p{n}" for n in range(25)
    )
    assert tool(stack).depth("DeliveryDLQ") == 0
    assert [i for i in stack.scan("ReconcilerStateTable") if i["pk"] == "REDRIVE"] == []


def test_a_confirmed_order_without_stock_is_listed_as_parked_for_a_person(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a confirmed order whose reservation failed again when the reconciler tried to reinstate it
    lines = [{"product_id": "p1", "quantity": 1}]
    stack.put_item("OrdersTable", {"pk": "ORDER#o1", "sk": "ORDER", "order_id": "o1", "customer_id": "c1",
                                   "status": "CONFIRMED", "lines": lines, "version": 2, "event_type": "OrderConfirmed",
                                   "correlation_id": "c", "updated_at": "2026-11-28T10:00:00+00:00"})  # fmt: skip
    stack.put_item("InventoryTable", {"pk": "RESERVATION#o1", "sk": "RESERVATION", "order_id": "o1", "lines": lines,
                                      "status": "FAILED", "reason": "reinstatement failed", "shortages": ["p1"],
                                      "version": 2, "reinstate_failed": True, "event_type": "StockReservationFailed",
                                      "correlation_id": "c", "updated_at": "2026-11-28T10:00:00+00:00"})  # fmt: skip
    # WHEN the reconciler sweeps and a person asks the tool
    functions.sweep()
    cases = tool(stack).parked("ANOMALY")
    # THEN the case is there once, with its kind and the reason
    (case,) = cases.values()
    assert (case["kind"], case["entity_id"]) == ("confirmed_without_stock", "o1")
    assert "CONFIRMED" in case["reason"]
    assert "FAILED" in case["reason"]


def test_without_a_region_the_tool_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no region anywhere (environment or config)
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    # WHEN a person runs the tool
    code = main(["--stack", "converge", "list"])
    # THEN it exits 2 with one line naming the problem
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert "region" in err


def test_an_event_a_person_parked_is_left_in_its_dlq_by_the_reconciler(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a readable event in the orders DLQ, which a pass would send back to the inbox
    sqs = boto3.client("sqs")
    reserved = domain_event(
        "StockReserved", {"order_id": "o7", "lines": [{"product_id": "p1", "quantity": 1}], "status": "RESERVED"}
    )
    sqs.send_message(QueueUrl=stack.queues["OrdersDLQ"], MessageBody=json.dumps(eventbridge_event(reserved)))
    dlqs = tool(stack)
    (letter,) = dlqs.letters("OrdersDLQ")
    # AND a person parked it (the cause is theirs to fix)
    assert dlqs.park("OrdersDLQ", letter, "waiting for the p1 fix", "2026-12-07T16:00:00+00:00") is None
    # WHEN the reconciler's pass drains the dead letters, twice
    reports = [functions.invoke("ReconcilerFunction", SCHEDULED) for _ in range(2)]
    # THEN the event stays in its DLQ, parked with the person's reason, and no pass redrove it
    assert [r["dead_letters"]["already_parked"] for r in reports] == [1, 1]
    assert [r["dead_letters"]["event"] for r in reports] == [0, 0]
    assert sqs.receive_message(QueueUrl=stack.queues["OrdersInbox"]).get("Messages", []) == []
    (kept,) = dlqs.letters("OrdersDLQ")
    assert kept.parked_reason == "waiting for the p1 fix"
