"""What the reconciler is doing: its last pass, its watermark, a running sweep by segment, its suspects, what it parked.

    python -m tools.reconcile --stack converge status            one fact per line
    python -m tools.reconcile --stack converge status --json     the same facts as one JSON document
    python -m tools.reconcile --local status                     localcloud in a moto server (see below)

Everything is read from the reconciler's state table (the stack's output ReconcilerStateTableName): the pass state
item, the sweep's header and segments, and the parked cases (`python -m tools.dlq` shows and redrives the poison
letters themselves). `--endpoint-url http://127.0.0.1:4566` targets LocalStack. `--local [URL]` targets localcloud
deployed into a moto server, by default http://127.0.0.1:5000 (`python -m localcloud --endpoint
http://127.0.0.1:5000 serve`; localcloud's stack is named converge): a plain `make serve` keeps moto inside its own
process, where no other process can read it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

# The reconciler's CodeUri, as Lambda's /var/task: the tool reads the state with the reconciler's own parsers.
_RECONCILER_CODE = str(Path(__file__).resolve().parents[1] / "functions" / "reconciler")
if _RECONCILER_CODE not in sys.path:
    sys.path.append(_RECONCILER_CODE)

from converge.dynamo import from_item, to_item  # noqa: E402
from reconciler.health import (  # noqa: E402
    InvalidSweepHeader,
    SweepHeader,
    SweepSegment,
    SweepStatus,
    assess,
    segments_key,
)
from reconciler.passes import ReconcilerState  # noqa: E402
from reconciler.store import ANOMALY_PK, PARKED_PK, STATE_KEY, SWEEP_KEY, state_of  # noqa: E402
from tools.target import BadInput, add_target_options, local_default, resolve, session  # noqa: E402


class NotTheStack(LookupError):
    """The stack exists but is not one this tool can read."""


@dataclass
class SweepView:
    header: SweepHeader | None = None
    unreadable: str | None = None  # why the header or a segment could not be read
    segments: list[SweepSegment] = field(default_factory=list)


class ReconcilerStatus:
    """Reads of the reconciler's state table, for a person."""

    def __init__(self, session: Any, state_table: str) -> None:
        self.dynamodb = session.client("dynamodb")
        self.state_table = state_table

    @classmethod
    def from_stack(cls, stack: str, session: Any) -> ReconcilerStatus:
        described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        if "ReconcilerStateTableName" not in outputs:
            raise NotTheStack(f"stack {stack!r} has no output ReconcilerStateTableName: not a Converge stack")
        return cls(session, outputs["ReconcilerStateTableName"])

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=self.state_table, Key=to_item(key), ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        for page in self.dynamodb.get_paginator("query").paginate(
            TableName=self.state_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=to_item({":pk": pk}),
        ):
            yield from (from_item(item) for item in page["Items"])

    def sweep(self) -> SweepView:
        item = self._get(SWEEP_KEY)
        if item is None:
            return SweepView()
        try:
            header = SweepHeader.from_item(item)
            view = SweepView(header)
            if header.status is not SweepStatus.SUCCEEDED:  # a finished sweep's segments are history
                view.segments = [SweepSegment.from_item(i) for i in self._query(segments_key(header.sweep_id))]
                view.segments.sort(key=lambda s: (s.table, s.segment))
            return view
        except InvalidSweepHeader as exc:
            return SweepView(unreadable=str(exc))

    def report(self, now: datetime, limit: int) -> dict[str, Any]:
        """Every fact `status` prints, as one JSON-ready document."""
        # No item: no pass has saved a state yet (a fresh stack), so nothing has an age and nothing is suspect.
        state = state_of(item) if (item := self._get(STATE_KEY)) else ReconcilerState()
        sweep = self.sweep()
        health = assess(state, sweep.header, now)
        anomalies = sorted(self._query(ANOMALY_PK), key=lambda r: str(r.get("parked_at", "")))
        poison = sorted(self._query(PARKED_PK), key=lambda r: str(r.get("parked_at", "")))
        products, orders = sorted(state.suspects.products), sorted(state.suspects.orders)
        return {
            "now": now.isoformat(),
            "last_pass": _moment(state.last_pass_at, health.last_pass_age_seconds),
            "watermark": _moment(state.watermark, health.watermark_age_seconds),
            "full_sweep_due": state.full_sweep_due,
            "sweep": _sweep(sweep, health.sweep_progress_age_seconds, now),
            "suspects": {
                "products": len(products),
                "orders": len(orders),
                "product_ids": products[:limit],
                "order_ids": orders[:limit],
            },
            "parked": {
                "anomalies": len(anomalies),
                "poison": len(poison),
                "anomaly_cases": [
                    {k: r.get(k) for k in ("kind", "entity_id", "reason", "parked_at")} for r in anomalies[:limit]
                ],
                "poison_letters": [
                    {"queue": str(r.get("queue_url", "")).rsplit("/", 1)[-1]}
                    | {k: r.get(k) for k in ("message_id", "reason", "parked_at")}
                    for r in poison[:limit]
                ],
            },
        }


def _moment(at: datetime | None, age: float | None) -> dict[str, Any] | None:
    return None if at is None else {"at": at.isoformat(), "age_seconds": round(age or 0.0)}


def _sweep(view: SweepView, progress_age: float, now: datetime) -> dict[str, Any] | None:
    if view.unreadable is not None:
        return {"unreadable": view.unreadable}
    if view.header is None:
        return None
    header = view.header
    return {
        **header.model_dump(mode="json"),
        "progress_age_seconds": round(progress_age),
        "segments": [
            {
                **segment.model_dump(mode="json"),
                "progress_age_seconds": round((now - segment.progress_at).total_seconds())
                if segment.progress_at
                else None,
            }
            for segment in view.segments
        ],
    }


def _ago(moment: dict[str, Any] | None) -> str:
    return "never" if moment is None else f"{moment['at']} ({moment['age_seconds']} s ago)"


def _ids(ids: list[str], total: int) -> str:
    return ", ".join(ids) + (f" (and {total - len(ids)} more)" if total > len(ids) else "")


def lines(report: dict[str, Any]) -> Iterator[str]:
    """The report as one fact per line: `name: value`."""
    yield f"last pass: {_ago(report['last_pass'])}"
    yield f"watermark: {_ago(report['watermark'])}"
    yield f"full sweep due: {'yes' if report['full_sweep_due'] else 'no'}"
    sweep = report["sweep"]
    if sweep is None:
        yield "sweep: none"
    elif "unreadable" in sweep:
        yield f"sweep: unreadable: {sweep['unreadable']}"
    else:
        yield (
            f"sweep: {sweep['sweep_id']} {sweep['status']} ({sweep['reason'] or 'no reason given'}), started "
            f"{sweep['started_at']}{', finished ' + sweep['finished_at'] if sweep['finished_at'] else ''}"
        )
        done, total = sweep["segments_done"], sweep["segments_total"]
        yield f"sweep segments: {done} of {total} done, {sweep['items_read']} items read"
        if sweep["status"] == SweepStatus.RUNNING:
            yield f"sweep last advanced: {sweep['progress_age_seconds']} s ago"
        if sweep.get("counters_left"):
            yield f"sweep counters left: {sweep['counters_left']} (the next pass starts a counters sweep)"
        if sweep.get("recounts"):
            yield f"sweep recounts sent: {sweep['recounts']} (the next pass starts a counters sweep to check them)"
        for s in sweep["segments"]:
            age = "never" if s["progress_age_seconds"] is None else f"{s['progress_age_seconds']} s ago"
            yield (
                f"segment {s['table']}#{s['segment']} of {s['total_segments']}: {'done' if s['done'] else 'running'}, "
                f"{s['items_read']} items in {s['pages']} pages, {s['invocations']} invocations, last advanced {age}"
            )
    suspects = report["suspects"]
    yield f"suspects: {suspects['products']} products, {suspects['orders']} orders"
    if suspects["products"]:
        yield f"suspect products: {_ids(suspects['product_ids'], suspects['products'])}"
    if suspects["orders"]:
        yield f"suspect orders: {_ids(suspects['order_ids'], suspects['orders'])}"
    parked = report["parked"]
    yield f"parked anomalies: {parked['anomalies']}"
    for case in parked["anomaly_cases"]:
        yield f"anomaly: {case['kind']} {case['entity_id']}, parked {case['parked_at']}: {case['reason']}"
    yield f"parked poison letters: {parked['poison']}"
    for letter in parked["poison_letters"]:
        where = f"{letter['queue']} {letter['message_id']}"
        yield f"poison letter: {where}, parked {letter['parked_at']}: {letter['reason']}"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise BadInput(message)


def parser() -> Parser:
    root = Parser(
        prog="python -m tools.reconcile",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_target_options(root)
    commands = root.add_subparsers(dest="command", required=True, parser_class=Parser)
    status = commands.add_parser("status", help="the reconciler's last pass, watermark, sweep, suspects, parked cases")
    status.add_argument("--json", action="store_true", help="one JSON document instead of one fact per line")
    status.add_argument("--limit", type=int, default=20, help="ids and parked cases listed at most (counts are whole)")
    return root


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(local_default(argv, ["status"]))
        if args.limit < 0:
            raise BadInput(f"--limit must be 0 or more, not {args.limit}")
        stack = resolve(args)
    except BadInput as exc:
        print(f"tools.reconcile: {exc}", file=sys.stderr)
        return 2
    try:
        reader = ReconcilerStatus.from_stack(stack, session(args))
        report = reader.report(datetime.now(UTC), args.limit)
    except (BotoCoreError, ClientError, NotTheStack) as exc:
        # No region, no credentials, no such stack or output: one line that says which, not a traceback.
        print(f"tools.reconcile: cannot read the reconciler of stack {stack!r}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in lines(report):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
