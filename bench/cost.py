"""Dollars per million business operations, from counted requests and invocations and bench/prices.json.

Billing units per operation, derived from what bench.pipeline counted:
- Lambda: one request per invocation; GB-seconds = billed milliseconds (each invocation rounded up to 1 ms,
  measured in-process on localcloud, so moto's own work is inside the function's time, for both designs) x
  the function's memory from the template.
- DynamoDB on-demand: PutItem/UpdateItem/DeleteItem = 1 WRU, a TransactWriteItems item = 2 WRU, a
  BatchWriteItem item = 1 WRU (items here are < 1 KB); GetItem (strongly consistent) and each Query/Scan page
  = 1 RRU (items < 4 KB). A conditional write that fails still consumes its WRU: it is counted like any write.
- DynamoDB Streams: GetRecords by a Lambda trigger is free.
- EventBridge: one custom event per PutEvents entry (entries < 64 KB).
- SQS: one SendMessage per message a rule delivered to an inbox (done by EventBridge, billed to the queue
  owner), plus the pollers' non-empty ReceiveMessage and DeleteMessageBatch calls. Empty receives of the
  idle long-polling pollers cost the same whatever the order volume, so they are left out of a per-order
  figure (5 pollers x 3 queues x 20 s long polls ~ 2 M requests = ~$0.9 a month).
- HTTP API: one request per command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.pipeline import POLLERS

PRICES_PATH = Path(__file__).with_name("prices.json")


def load_prices(path: Path = PRICES_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _split(key: str) -> tuple[str, str, str]:
    actor, service, operation = key.split("|")
    return actor, service, operation


def units(
    phase: dict[str, Any], *, http_requests: float = 1.0, guard_writes_per_event: float = 0.0
) -> dict[str, float]:
    """Billing units per business operation from one measured phase (see bench.pipeline._phase)."""
    n = phase["units"]
    raw = phase["raw"]
    lambda_requests = sum(f["invocations"] for f in phase["functions"].values())
    gb_seconds = sum(f["billed_ms"] / 1000 * f["memory_mb"] / 1024 for f in phase["functions"].values())
    wru = rru = events = sqs = 0.0
    for key, count in raw["requests"].items():
        actor, service, operation = _split(key)
        items = raw["items"].get(key, count)
        if service == "dynamodb":
            if operation == "TransactWriteItems":
                wru += 2 * items
            elif operation == "BatchWriteItem":
                wru += items
            elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
                wru += count
            elif operation in ("GetItem", "Query", "Scan"):
                rru += count
            elif operation in ("BatchGetItem", "TransactGetItems"):
                rru += items * (2 if operation == "TransactGetItems" else 1)
        elif service == "eventbridge" and operation == "PutEvents":
            events += items
        elif service == "sqs" and actor == POLLERS:
            if operation == "ReceiveMessage":
                sqs += count - raw["empty_receives"].get(POLLERS, 0)
            elif operation in ("DeleteMessageBatch", "DeleteMessage", "ChangeMessageVisibility"):
                sqs += count
        elif service == "sqs":
            sqs += count  # a function's own SQS calls (the reconciler's)
    delivered = raw["received"].get(POLLERS, 0)
    sqs += delivered  # EventBridge's SendMessage of each delivered event into an inbox
    consumed = sum(f["records"] * n for name, f in phase["functions"].items() if name in phase["consumer_path"])
    wru += guard_writes_per_event * consumed
    return {
        "lambda_requests": lambda_requests,
        "lambda_gb_seconds": gb_seconds,
        "dynamodb_wru": wru / n,
        "dynamodb_rru": rru / n,
        "eventbridge_events": events / n,
        "sqs_requests": sqs / n,
        "http_api_requests": http_requests,
    }


PRICE_OF = {
    "lambda_requests": "lambda_request",
    "lambda_gb_seconds": "lambda_gb_second_x86",
    "dynamodb_wru": "dynamodb_write_request_unit",
    "dynamodb_rru": "dynamodb_read_request_unit",
    "eventbridge_events": "eventbridge_custom_event",
    "sqs_requests": "sqs_request",
    "http_api_requests": "http_api_request",
}


def dollars_per_million(unit_counts: dict[str, float], prices: dict[str, Any]) -> dict[str, float]:
    """USD per million operations, per billing line and in total."""
    table = prices["prices"]
    lines = {}
    for name, count in unit_counts.items():
        price = table[PRICE_OF[name]]
        lines[name] = round(count * 1_000_000 * price["usd"] / price["per"], 3)
    lines["total"] = round(sum(lines.values()), 3)
    return lines


def compare(ours: dict[str, Any], baseline: dict[str, Any], guard_writes_per_event: float) -> dict[str, Any]:
    """Per operation: units and $/M for Converge and for the one-event-per-invocation baseline."""
    prices = load_prices()
    rows = {}
    for operation, phase in ours["phases"].items():
        ours_units = units(phase)
        base_units = units(baseline["phases"][operation], guard_writes_per_event=guard_writes_per_event)
        ours_cost = dollars_per_million(ours_units, prices)
        base_cost = dollars_per_million(base_units, prices)
        rows[operation] = {
            "converge": {"units": ours_units, "usd_per_million": ours_cost},
            "baseline": {"units": base_units, "usd_per_million": base_cost},
            "saving": round(1 - ours_cost["total"] / base_cost["total"], 3) if base_cost["total"] else None,
        }
    return {"operations": rows, "prices_read_on": prices["read_on"], "goal_saving": 0.30}
