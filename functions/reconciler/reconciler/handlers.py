"""The reconciler's entry points: the scheduled pass, and the tasks of the sweep's state machine."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.entry import scheduled_entry, task_entry
from converge.errors import UnexpectedEventError
from reconciler import sweeper
from reconciler.passes import parse_invocation
from reconciler.service import reconcile


@scheduled_entry()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Its schedule sends a scheduled event (or the operator `{"mode": "full"}`); anything else is miswired.
    if not isinstance(event, dict) or {"Records", "requestContext", "action"} & set(event):
        raise UnexpectedEventError("an EventBridge scheduled event", event)
    invocation = parse_invocation(event)
    return asdict(reconcile(invocation.mode, invocation.projection))


@task_entry()
def sweep_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A task of ReconcilerSweepStateMachine: start, one segment's pages, the counters' pages, finish or fail."""
    # The state machine sends an object with an `action`; anything else is miswired.
    if not isinstance(event, dict) or "action" not in event:
        raise UnexpectedEventError(sweeper.SWEEP_TASK, event)
    task = sweeper.parse_task(event)
    now = datetime.now(UTC)
    if isinstance(task, sweeper.StartTask):
        return sweeper.start(task, now)
    if isinstance(task, sweeper.SegmentTask):
        return sweeper.segment(task, context.get_remaining_time_in_millis)
    if isinstance(task, sweeper.ConfirmTask):
        return sweeper.confirm(task)
    if isinstance(task, sweeper.FinishTask):
        return sweeper.finish(task, now)
    return sweeper.fail(task)
