"""Inspect, park and redrive the dead-letter queues of a stack by hand: a deployed one, or localcloud.

    python -m tools.dlq --stack converge list
    python -m tools.dlq --stack converge show OrdersDLQ
    python -m tools.dlq --stack converge park OrdersDLQ MESSAGE_ID --reason TEXT
    python -m tools.dlq --stack converge redrive OrdersDLQ [--message-id ID ...]
    python -m tools.dlq --stack converge anomalies
    python -m tools.dlq --local list                     localcloud in a moto server (see below)

`anomalies` lists what the reconciler parked for a person (a confirmed order without stock, a stock count after a
restore; docs/CONSISTENCY.md), with its reason. `park` records a message of a DLQ as parked for a person, in the
reconciler's own record (once: a message already parked keeps its first reason, and the tool says so); `show` and
`list` then report it as parked, and `redrive` forgets the record.

`--endpoint-url http://127.0.0.1:4566` targets LocalStack. `--local [URL]` targets localcloud deployed into a moto
server, by default http://127.0.0.1:5000 (`python -m localcloud --endpoint http://127.0.0.1:5000 serve`; its stack is
named converge). Queues, inboxes, the bus and the reconciler's state table
come from the stack's outputs. Redriving sends a service DLQ's messages back to the service's inbox (the delivery DLQ's
back onto the bus), deletes them from the DLQ and forgets their parked record; the reconciler's redrive counter is
reset, so a message fixed by a deployment gets its full number of tries again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from converge.contracts import with_inboxes
from converge.dynamo import is_conditional_check_failure, to_item
from localcloud.cli import Parser, refuse, whole
from tools.target import BadInput, add_target_options, local_default, resolve, session

# Each consuming service's DLQ -> its inbox (converge.contracts): where a redriven message goes back to.
SERVICE_QUEUES = {service.dlq: service.inbox for service in with_inboxes()}
DELIVERY_DLQ = "DeliveryDLQ"
PARKED_PK = "PARKED"
ANOMALY_PK = "ANOMALY"
REDRIVE_PK = "REDRIVE"  # the reconciler's redrive count of an event, by DLQ and event id
PARKED_BODY_CHARS = 64 * 1024  # as the reconciler's parked record: enough to recognise, the DLQ keeps all of it
VISIBILITY_SECONDS = 60  # how long a received letter stays hidden while the tool works
HEARTBEAT_SECONDS = 30  # the letters held back are hidden again before their visibility can lapse
COMMANDS = ("list", "show", "park", "redrive", "anomalies")


@dataclass(frozen=True)
class Letter:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    parked_reason: str | None


class DeadLetterQueues:
    """The stack's DLQs, where their messages go back to, and the reconciler's parked records."""

    def __init__(self, session: Any, urls: dict[str, str], bus_name: str, state_table: str) -> None:
        self.sqs = session.client("sqs")
        self.events = session.client("events")
        self.dynamodb = session.client("dynamodb")
        self.urls = urls  # logical id of each DLQ and inbox -> queue url
        self.bus_name = bus_name
        self.state_table = state_table

    @classmethod
    def from_stack(cls, stack: str, session: Any) -> DeadLetterQueues:
        described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        names = [*SERVICE_QUEUES, *SERVICE_QUEUES.values(), DELIVERY_DLQ]
        urls = {name: outputs[f"{name}Url"] for name in names}
        return cls(session, urls, outputs["BusName"], outputs["ReconcilerStateTableName"])

    def depth(self, dlq: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.urls[dlq],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def parked(self, pk: str = PARKED_PK) -> dict[str, dict[str, Any]]:
        """Parked record by sort key ("<queue name>#<message id>" for poison, "<kind>#<entity>#<versions>" for
        anomalies)."""
        records: dict[str, dict[str, Any]] = {}
        paginator = self.dynamodb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.state_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        ):
            for item in page["Items"]:
                records[item["sk"]["S"]] = {k: next(iter(v.values())) for k, v in item.items()}
        return records

    def letters(self, dlq: str, limit: int = 100) -> list[Letter]:
        """Up to `limit` messages with their parked reasons (hidden while they are read, visible again after)."""
        url = self.urls[dlq]
        queue_name = url.rsplit("/", 1)[-1]
        parked = self.parked()
        found: list[Letter] = []
        while len(found) < limit and (batch := self._receive(url, min(10, limit - len(found)))):
            for letter in batch:
                record = parked.get(f"{queue_name}#{letter.message_id}")
                found.append(replace(letter, parked_reason=record["reason"] if record else None))
        self._set_visibility(url, found, 0)
        return found

    def find(self, dlq: str, message_id: str) -> Letter | None:
        """The DLQ's message with this id, or None: received ten at a time until found, all visible again after."""
        url = self.urls[dlq]
        seen: list[Letter] = []
        found: Letter | None = None
        while found is None and (batch := self._receive(url, 10)):
            seen.extend(batch)
            found = next((letter for letter in batch if letter.message_id == message_id), None)
        self._set_visibility(url, seen, 0)
        return found

    def park(self, dlq: str, letter: Letter, reason: str, parked_at: str) -> dict[str, Any] | None:
        """Record the letter as parked for a person, in the record the reconciler writes, only if it is not yet.

        Returns None when it is now parked, else the record it already had (left as it was)."""
        queue_name = self.urls[dlq].rsplit("/", 1)[-1]
        record = {
            "pk": PARKED_PK,
            "sk": f"{queue_name}#{letter.message_id}",
            "queue_url": self.urls[dlq],
            "message_id": letter.message_id,
            "reason": reason,
            "body": letter.body[:PARKED_BODY_CHARS],
            "parked_at": parked_at,
        }
        try:
            self.dynamodb.put_item(
                TableName=self.state_table, Item=to_item(record), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if not is_conditional_check_failure(exc):
                raise
            return self.parked().get(record["sk"], {})
        return None

    def redrive(self, dlq: str, message_ids: set[str] | None = None) -> RedriveResult:
        """Send messages (all, or those named) back where they came from, ten at a time: each batch is sent before
        the next is received, and the messages left in the queue stay hidden (their visibility extended) until the
        end, so none is received twice. A stream mapping's OnFailure record is never sent to an inbox: it names a
        stream batch, not an event (the reconciler repairs what it covered from the tables' state)."""
        url = self.urls[dlq]
        queue_name = url.rsplit("/", 1)[-1]
        result = RedriveResult()
        held: list[Letter] = []  # received, not moved: hidden until the end
        held_since = time.monotonic()
        while batch := self._receive(url, 10):
            for letter in batch:
                reason = self._refusal(letter, message_ids)
                if reason is not None:
                    held.append(letter)
                    if reason:
                        result.refused[letter.message_id] = reason
                elif self._send_back(dlq, letter):
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=letter.receipt_handle)
                    self._forget(queue_name, letter)
                    result.moved += 1
                else:
                    held.append(letter)
                    result.refused[letter.message_id] = "PutEvents failed; left in the DLQ"
            if held and time.monotonic() - held_since > HEARTBEAT_SECONDS:
                self._set_visibility(url, held, VISIBILITY_SECONDS)
                held_since = time.monotonic()
        self._set_visibility(url, held, 0)
        return result

    def _receive(self, url: str, count: int) -> list[Letter]:
        messages = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=count, VisibilityTimeout=VISIBILITY_SECONDS,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])  # fmt: skip
        return [
            Letter(m["MessageId"], m["ReceiptHandle"], m["Body"],
                   int(m.get("Attributes", {}).get("ApproximateReceiveCount", "0")), None)
            for m in messages
        ]  # fmt: skip

    @staticmethod
    def _refusal(letter: Letter, message_ids: set[str] | None) -> str | None:
        """None to move the letter; "" to leave it silently (not asked for); else why it is left."""
        if message_ids is not None and letter.message_id not in message_ids:
            return ""
        try:
            body = json.loads(letter.body)
        except ValueError:
            return None  # a service's poison: the person asked for it back, the consumer will judge it again
        if isinstance(body, dict) and "DDBStreamBatchInfo" in body:
            return "a stream batch's OnFailure record, not an event: left in the DLQ (the reconciler repairs it)"
        return None

    def _send_back(self, dlq: str, letter: Letter) -> bool:
        if dlq != DELIVERY_DLQ:
            self.sqs.send_message(QueueUrl=self.urls[SERVICE_QUEUES[dlq]], MessageBody=letter.body)
            return True
        event = json.loads(letter.body)
        entry = {
            "EventBusName": self.bus_name,
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]),
        }
        return not self.events.put_events(Entries=[entry]).get("FailedEntryCount")

    def _forget(self, queue_name: str, letter: Letter) -> None:
        """Forget the letter's parked record and its event's redrive count: it gets its full number of tries."""
        keys = [(PARKED_PK, f"{queue_name}#{letter.message_id}")]
        try:
            event_id = json.loads(letter.body)["detail"]["metadata"]["event_id"]
            keys.append((REDRIVE_PK, f"{queue_name}#{event_id}"))
        except (ValueError, KeyError, TypeError):
            pass
        for pk, sk in keys:
            self.dynamodb.delete_item(TableName=self.state_table, Key={"pk": {"S": pk}, "sk": {"S": sk}})

    def _set_visibility(self, url: str, letters: list[Letter], seconds: int) -> None:
        for start in range(0, len(letters), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": seconds}
                    for i, letter in enumerate(letters[start : start + 10])
                ],
            )


@dataclass
class RedriveResult:
    moved: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # message id -> why it was left in the DLQ


def parser() -> Parser:
    root = Parser(
        prog="python -m tools.dlq",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_target_options(root)
    queues = [*SERVICE_QUEUES, DELIVERY_DLQ]
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="depth of every DLQ and how many of its messages are parked")
    show = sub.add_parser("show", help="the messages of one DLQ with their parked reason")
    show.add_argument("queue", choices=queues, help="the DLQ's logical id")
    show.add_argument("--limit", type=whole(1), default=20, help="messages shown at most")
    park = sub.add_parser("park", help="record a DLQ message as parked for a person (the reconciler's record)")
    park.add_argument("queue", choices=queues, help="the DLQ's logical id")
    park.add_argument("message_id", help="the message's id, as `show` prints it")
    park.add_argument("--reason", required=True, help="why it is parked, for whoever reads `show` next")
    redrive = sub.add_parser("redrive", help="send a DLQ's messages back to their inbox (or the bus)")
    redrive.add_argument("queue", choices=queues, help="the DLQ's logical id")
    redrive.add_argument("--message-id", action="append", help="only these messages (repeatable)")
    sub.add_parser("anomalies", help="what the reconciler parked for a person, with the reason")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(local_default(argv, COMMANDS))
    try:
        stack = resolve(args)
        if args.command == "park" and not args.reason.strip():
            raise BadInput("park: --reason must say why, not be empty")
    except BadInput as exc:
        return refuse("tools.dlq", str(exc))
    try:
        queues = DeadLetterQueues.from_stack(stack, session(args))
    except (BotoCoreError, ClientError) as exc:
        # No region, no credentials, no such stack: one line that says which, not a traceback.
        return refuse("tools.dlq", f"cannot read stack {stack!r}: {exc}")
    if args.command == "list":
        parked = queues.parked()
        for dlq in [*SERVICE_QUEUES, DELIVERY_DLQ]:
            name = queues.urls[dlq].rsplit("/", 1)[-1]
            count = sum(1 for key in parked if key.startswith(f"{name}#"))
            print(f"{dlq:18} {queues.depth(dlq):6} messages, {count} parked as poison")
    elif args.command == "show":
        for letter in queues.letters(args.queue, args.limit):
            reason = letter.parked_reason or "(not parked: transient, the reconciler redrives it)"
            print(f"{letter.message_id}  received {letter.receive_count}x  {reason}\n    {letter.body[:300]}")
    elif args.command == "park":
        return _park(queues, args.queue, args.message_id, args.reason.strip())
    elif args.command == "anomalies":
        cases = queues.parked(ANOMALY_PK)
        for record in cases.values():
            when, kind, entity = record.get("parked_at", ""), record.get("kind"), record.get("entity_id")
            print(f"{when}  {kind}  {entity}  {record.get('reason')}")
        print(f"{len(cases)} case(s) parked for a person")
    else:
        ids = set(args.message_id) if args.message_id else None
        result = queues.redrive(args.queue, ids)
        for message_id, reason in result.refused.items():
            print(f"left {message_id}: {reason}", file=sys.stderr)
        print(f"redrove {result.moved} message(s) from {args.queue}")
    return 0


def _park(queues: DeadLetterQueues, dlq: str, message_id: str, reason: str) -> int:
    """`park`: 0 when the message is parked (now, or already: its first record is kept and shown), 2 when the DLQ
    holds no message with that id."""
    letter = queues.find(dlq, message_id)
    if letter is None:
        return refuse("tools.dlq", f"park: {dlq} holds no message {message_id!r} (`show {dlq}` lists its ids)")
    earlier = queues.park(dlq, letter, reason, datetime.now(UTC).isoformat())
    if earlier is None:
        print(f"parked {message_id} in {dlq}: {reason}")
    else:
        print(f"already parked {message_id} in {dlq} at {earlier.get('parked_at')}: {earlier.get('reason')} (kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
