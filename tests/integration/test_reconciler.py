"""The reconciler under moto: lagging projections are republished from state; DLQs are drained by kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from converge.envelope import event_from_item, parse_detail
from reconciler.dead_letters import MAX_REDRIVES
from tests.support.events import domain_event, eventbridge_event
from tests.support.stack import FunctionRunner, Stack

SCHEDULED = json.loads(
    (Path(__file__).resolve().parents[2] / "events" / "ReconcilerFunction.scheduled.json").read_text()
)
NOW = "2026-11-28T10:00:00+00:00"


def product(pid: str, version: int, on_hand: int = 10) -> dict[str, Any]:
    return {
        "pk": f"PRODUCT#{pid}", "sk": "PRODUCT", "product_id": pid, "on_hand": on_hand, "reserved": 0,
        "available": on_hand, "version": version, "event_type": "StockUpdated", "correlation_id": "c",
        "updated_at": NOW,
    }  # fmt: skip


def order(oid: str, status: str, version: int) -> dict[str, Any]:
    event_type = {"PENDING": "OrderPlaced", "CONFIRMED": "OrderConfirmed"}[status]
    return {
        "pk": f"ORDER#{oid}", "sk": "ORDER", "order_id": oid, "customer_id": "cust", "status": status,
        "lines": [{"product_id": "p1", "quantity": 1}], "version": version, "event_type": event_type,
        "correlation_id": "c", "updated_at": NOW,
    }  # fmt: skip


def availability(pid: str, version: int, on_hand: int = 10) -> dict[str, Any]:
    return {"pk": f"AVAILABILITY#{pid}", "sk": "AVAILABILITY", "product_id": pid, "version": version,
            "on_hand": on_hand, "reserved": 0, "available": on_hand}  # fmt: skip


def queue_depth(url: str) -> int:
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def receive_all(url: str) -> list[Any]:
    return (
        boto3.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )


def test_consistent_system_republishes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a product whose availability projection is current
    stack.put_item("InventoryTable", product("p1", 2))
    stack.put_item("NotificationsTable", availability("p1", 2))
    # WHEN the scheduled reconciler runs
    report = functions.invoke("ReconcilerFunction", SCHEDULED)
    # THEN it found nothing and put nothing on the bus
    assert report["republished"] == 0
    assert set(report["found"].values()) == {0}
    assert stack.events_on_bus() == []


def test_lagging_projections_are_republished_with_the_publishers_event_ids(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN availability one version behind, and a placed order inventory never saw
    stack.put_item("InventoryTable", product("p1", 3, on_hand=7))
    stack.put_item("NotificationsTable", availability("p1", 2))
    stack.put_item("OrdersTable", order("o1", "PENDING", 1))
    # WHEN the reconciler sweeps (what its first pass starts)
    report = functions.sweep()
    # THEN it reports both and republishes the current state, as the same events the publisher would emit
    assert report["found"]["availability"] == 1
    assert report["found"]["order_reservation"] == 1
    assert report["republished"] == 2
    published = {e["detail-type"]: parse_detail(e["detail-type"], e["detail"]) for e in stack.events_on_bus()}
    assert set(published) == {"StockUpdated", "OrderPlaced"}
    assert published["StockUpdated"].metadata.entity_version == 3
    assert published["StockUpdated"].data.model_dump()["available"] == 7
    expected = event_from_item(stack.get_item("InventoryTable", "PRODUCT#p1", "PRODUCT") or {})
    assert expected is not None
    assert published["StockUpdated"].metadata.event_id == expected.metadata.event_id


def test_dead_letters_are_redriven_parked_or_acknowledged_by_kind(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the orders DLQ holding a valid event, a non-JSON body, an event redriven too often,
    #       and a stream mapping's OnFailure record
    sqs = boto3.client("sqs")
    dlq, inbox = stack.queues["OrdersDLQ"], stack.queues["OrdersInbox"]
    reserved = domain_event(
        "StockReserved", {"order_id": "o9", "lines": [{"product_id": "p1", "quantity": 1}], "status": "RESERVED"}
    )
    valid_body = json.dumps(eventbridge_event(reserved))
    sqs.send_message(QueueUrl=dlq, MessageBody=valid_body)
    sqs.send_message(QueueUrl=dlq, MessageBody="{not json")
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=valid_body,
        MessageAttributes={"converge-redrives": {"DataType": "Number", "StringValue": "3"}},
    )
    on_failure = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4},
        "DDBStreamBatchInfo": {"shardId": "shardId-1", "startSequenceNumber": "100", "endSequenceNumber": "120"},
    }
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(on_failure))
    # WHEN the reconciler runs
    report = functions.invoke("ReconcilerFunction", SCHEDULED)
    # THEN the valid event is back in its inbox with its redrive counted, the stream record is acknowledged,
    #      and the two poison messages stay in the DLQ
    assert report["dead_letters"] == {"stream_batch": 1, "event": 1, "poison": 2, "already_parked": 0}
    redriven = receive_all(inbox)
    assert [m["Body"] for m in redriven] == [valid_body]
    assert redriven[0]["MessageAttributes"]["converge-redrives"]["StringValue"] == "1"
    assert queue_depth(dlq) == 2
    # AND each poison message is recorded once, with its reason, for the DLQ tool to list
    parked = [i for i in stack.scan("ReconcilerStateTable") if i["pk"] == "PARKED"]
    assert sorted(p["reason"] for p in parked) == [
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "still failing after 3 redrives",
    ]


def test_an_undeliverable_event_is_parked_after_bounded_redrives_through_the_bus(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN an event that EventBridge cannot deliver: each redrive puts it back on the bus, and it comes back to the
    #       delivery DLQ as a new message, without any attribute the last redrive set
    sqs = boto3.client("sqs")
    dlq = stack.queues["DeliveryDLQ"]
    stuck = domain_event("StockUpdated", {"product_id": "p-stuck", "on_hand": 3, "reserved": 0, "available": 3})
    body = json.dumps(eventbridge_event(stuck))
    verdicts = []
    for _ in range(MAX_REDRIVES + 2):
        sqs.send_message(QueueUrl=dlq, MessageBody=body)
        # WHEN a reconciler pass drains the delivery DLQ
        report = functions.invoke("ReconcilerFunction", SCHEDULED)
        verdicts.append({kind: n for kind, n in report["dead_letters"].items() if n})
        for parked_letter in receive_all(dlq):  # a person clears a parked one; the next failure is a new message
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=parked_letter["ReceiptHandle"])
    # THEN it is redelivered through the bus MAX_REDRIVES times, then parked once with its reason
    assert verdicts == [{"event": 1}] * MAX_REDRIVES + [{"poison": 1}, {"poison": 1}]
    parked = [i for i in stack.scan("ReconcilerStateTable") if i["pk"] == "PARKED"]
    assert len(parked) == 2
    assert {p["reason"] for p in parked} == {f"still failing after {MAX_REDRIVES} redrives"}
    # AND the count is kept by event id in the reconciler's state table
    counts = [i for i in stack.scan("ReconcilerStateTable") if i["pk"] == "REDRIVE"]
    assert [(c["sk"].split("#", 1)[1], c["redrives"]) for c in counts] == [(stuck.metadata.event_id, MAX_REDRIVES)]


def test_reconciler_fixture_runs_a_pass(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the committed scheduled-event fixture and an order confirmed but never notified
    stack.put_item("OrdersTable", order("o2", "CONFIRMED", 2))
    stack.put_item("InventoryTable", {**product("p1", 2), "pk": "RESERVATION#o2", "sk": "RESERVATION", "order_id": "o2",
                                      "status": "RESERVED", "lines": [{"product_id": "p1", "quantity": 1}],
                                      "event_type": "StockReserved"})  # fmt: skip
    # WHEN the reconciler is invoked with it
    report = functions.invoke("ReconcilerFunction", SCHEDULED)
    # THEN its first pass starts the sweep for what was written before it (it has no watermark yet)
    assert (report["mode_reason"], report["sweep_started"].split(":")[5]) == ("no watermark yet", "execution")
    # AND the sweep republishes the confirmation for notifications (its outcome and its notification are missing)
    report = functions.sweep()
    assert report["found"]["order_outcome"] == report["found"]["order_notification"] == 1
    assert [e["detail-type"] for e in stack.events_on_bus()] == ["OrderConfirmed"]
