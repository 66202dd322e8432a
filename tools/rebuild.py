"""Rebuild one projection in place while the system keeps taking writes: drop its items, refill them from the bus
archive (a replay to its consumer's rule only) or from a snapshot of the sources (the reconciler's backfill), and
check that it converged.

    python -m tools.rebuild availability --from snapshot --stack converge     # a deployed stack (boto3)

Dropping in place is safe here because every projection write is conditional on the source's version with
`attribute_not_exists` as its first case: a live event that arrives after the drop writes the item, one that the
rebuild brings later is skipped as stale (docs/CONSISTENCY.md, "Rebuilding a projection"). The drop itself is
conditional on the version it read: an item a live event rewrote between the scan and the delete is kept. Customer
notifications are never dropped: they are a record of what was sent, and sending them again is what a rebuild
must not do.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from converge.projections import PROJECTIONS_BY_NAME, Projection
from localcloud.cli import Parser, refuse

REBUILDABLE = ("availability", "order_outcome")
SOURCES = ("archive", "snapshot")


class RebuildError(RuntimeError):
    """The rebuild cannot be made as asked."""


@dataclass
class RebuildReport:
    projection: str
    source: str
    read: int = 0  # items of the projection's table read to find the projection's own
    dropped: int = 0
    skipped: int = 0  # items of the table that belong to something else
    kept: int = 0  # the projection's items a live event rewrote between the scan and the drop: not dropped
    events_replayed: int = 0  # archive: archived events the replay processed; snapshot: events republished
    written: int = 0  # the projection's items present after the rebuild
    seconds: float = 0.0
    divergent: int = -1  # the convergence check of that projection at the end


@dataclass
class Target:
    """What a rebuild needs of a stack; localcloud/rebuild.py and `from_stack` build one."""

    dynamodb: Any
    tables: dict[str, str]  # service -> table name
    backfill: Callable[[str], int]  # projection -> events republished
    # (replay name, service) -> started; what it returns counts the archived events replayed once settled
    replay: Callable[[str, str], Callable[[], int]]
    settle: Callable[[], None]  # until the pipeline has delivered what was sent (localcloud pumps)
    divergent: Callable[[str], int]  # projection -> divergent entities (the independent checker)
    # Called after the drop ("dropped") and after the refill started ("refilling"): a deployed stack's traffic
    # goes on by itself; localcloud's rebuild scenario runs its storefront traffic there.
    traffic: Callable[[str], None] = lambda phase: None


def projection_of(name: str) -> Projection:
    if name not in REBUILDABLE:
        raise RebuildError(f"{name} is not rebuildable; choose one of {list(REBUILDABLE)}")
    return PROJECTIONS_BY_NAME[name]


def scan_keys(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    pages = client.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="pk, sk, #v", ExpressionAttributeNames={"#v": "version"}
    )
    for page in pages:
        items.extend(page["Items"])
    return items


def drop_if_unchanged(client: Any, table: str, item: dict[str, Any]) -> bool:
    """Delete one projection item if it still holds the version the scan read; False if a live write came first."""
    key = {"pk": item["pk"], "sk": item["sk"]}
    if "version" in item:
        condition: dict[str, Any] = {
            "ConditionExpression": "#v = :v",
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": {":v": item["version"]},
        }
    else:
        condition = {"ConditionExpression": "attribute_not_exists(#v)", "ExpressionAttributeNames": {"#v": "version"}}
    try:
        client.delete_item(TableName=table, Key=key, **condition)
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def rebuild(target: Target, name: str, source: str, *, progress: bool = True, replay_name: str = "") -> RebuildReport:
    """Drop `name`'s items, refill them from `source`, settle, and check that projection."""
    projection = projection_of(name)
    if source not in SOURCES:
        raise RebuildError(f"--from must be one of {list(SOURCES)}")
    from tqdm import tqdm

    report = RebuildReport(name, source)
    started = time.monotonic()
    table = target.tables[projection.table]
    items = scan_keys(target.dynamodb, table)
    report.read = len(items)
    with tqdm(total=len(items), desc=f"drop {name}", unit="item", disable=not progress, file=sys.stderr) as bar:
        for item in items:
            if projection.source_id_of(item["pk"]["S"], item["sk"]["S"]) is None:
                report.skipped += 1
            elif drop_if_unchanged(target.dynamodb, table, item):
                report.dropped += 1
            else:
                report.kept += 1
            bar.update(1)
    target.traffic("dropped")
    if source == "snapshot":
        republished = target.backfill(name)
        replayed: Callable[[], int] = lambda: republished  # noqa: E731
    else:
        replayed = target.replay(replay_name or f"rebuild-{name}-{int(time.time())}", projection.service)
    target.traffic("refilling")
    target.settle()
    report.events_replayed = replayed()
    report.written = sum(
        1 for i in scan_keys(target.dynamodb, table) if projection.source_id_of(i["pk"]["S"], i["sk"]["S"]) is not None
    )
    report.divergent = target.divergent(name)
    report.seconds = time.monotonic() - started
    return report


# ---------------------------------------------------------------- a deployed stack
def from_stack(stack_name: str) -> Target:  # pragma: no cover - needs a deployed stack
    """A Target for a CloudFormation stack of template.yaml, through boto3."""
    import boto3

    from converge.contracts import with_tables
    from localcloud import convergence

    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in boto3.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
    }
    dynamodb, events = boto3.client("dynamodb"), boto3.client("events")
    tables = {s.name: resources[str(s.table)] for s in with_tables()}
    bus_arn = events.describe_event_bus(Name=resources["Bus"])["Arn"]
    archive = events.describe_archive(ArchiveName=resources["BusArchive"].split("|")[-1])

    def backfill(projection: str) -> int:
        # The sweep of one projection: an execution of the sweep's state machine, waited for; its output is the report.
        stepfunctions = boto3.client("stepfunctions")
        execution = stepfunctions.start_execution(
            stateMachineArn=resources["ReconcilerSweepStateMachine"],
            name=f"rebuild-{projection.replace('_', '-')}-{int(time.time())}",
            input=json.dumps({"reason": "rebuild", "projection": projection}),
        )["executionArn"]
        while (described := stepfunctions.describe_execution(executionArn=execution))["status"] == "RUNNING":
            time.sleep(15)
        if described["status"] != "SUCCEEDED":
            raise RebuildError(f"sweep {execution} ended {described['status']}")
        return int(json.loads(described["output"])["republished"])

    def replay(name: str, service: str) -> Callable[[], int]:
        rule = resources[f"{service.capitalize()}InboxRule"].split("|")[-1]
        rule_arn = events.describe_rule(Name=rule, EventBusName=resources["Bus"])["Arn"]
        events.start_replay(
            ReplayName=name,
            EventSourceArn=archive["ArchiveArn"],
            EventStartTime=archive["CreationTime"],
            EventEndTime=datetime.now(UTC),
            Destination={"Arn": bus_arn, "FilterArns": [rule_arn]},
        )
        while (state := events.describe_replay(ReplayName=name)["State"]) not in ("COMPLETED", "FAILED", "CANCELLED"):
            time.sleep(15)
        if state != "COMPLETED":
            raise RebuildError(f"replay {name} ended {state}")
        return lambda: -1  # EventBridge does not report how many events a replay sent

    return Target(
        dynamodb=dynamodb,
        tables=tables,
        backfill=backfill,
        replay=replay,
        settle=lambda: time.sleep(60),
        divergent=lambda p: convergence.check(dynamodb, tables).counts.get(p, 0),
    )


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    parser = Parser(prog="python -m tools.rebuild", description=__doc__.splitlines()[0])
    parser.add_argument("projection", choices=REBUILDABLE)
    parser.add_argument("--from", dest="source", choices=SOURCES, default="snapshot")
    parser.add_argument("--stack", default="converge", help="the CloudFormation stack (default: converge)")
    args = parser.parse_args(argv)
    try:
        target = from_stack(args.stack)
    except (BotoCoreError, ClientError) as exc:
        # No region, no credentials, no such stack: one line that says which, not a traceback.
        return refuse("python -m tools.rebuild", f"cannot read stack {args.stack!r}: {exc}")
    report = rebuild(target, args.projection, args.source)
    print(json.dumps(asdict(report), indent=2))
    return 0 if report.divergent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
