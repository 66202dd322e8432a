"""Gaps found while verifying that reconciliation repairs everything the fault model breaks (issue 4, part 3),
kept as regression tests once fixed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan
from tests.localcloud.real import REAL_TEMPLATE


@pytest.fixture
def real() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as cloud:
        yield cloud


def _dlq_time_passes(cloud: LocalCloud, queue: str) -> None:
    """The DLQ's visibility timeout passes for what the reconciler received (moto's DLQ runs on its wall clock;
    localcloud's clock only drives the mappings' queues): its messages are visible again, as 5 minutes later."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    name = cloud.queue_url(queue).rsplit("/", 1)[-1]
    for message in sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[name]._messages:
        message.change_visibility(0)


def test_a_parked_poison_message_is_counted_once_however_many_passes_run(real: LocalCloud) -> None:
    # GIVEN one poison message that SQS moved to the orders DLQ
    real.faults.start(FaultPlan(seed=1, poison_rate=1.0, functions=("OrdersConsumerFunction",)))
    real.sqs_mappings[
        next(k for k, m in real.sqs_mappings.items() if m.config.function == "OrdersConsumerFunction")
    ].step()
    real.faults.stop()
    for _ in range(7):
        real.run_until_quiet()
        real.advance(61)
    assert real.queue_depth("OrdersDLQ") == 1
    # WHEN two reconciliation passes run, the DLQ's visibility timeout passing in between (as in 5 minutes)
    first = real.invoke("ReconcilerFunction", {"mode": "full"})
    assert first.ok, first.error
    _dlq_time_passes(real, "OrdersDLQ")
    second = real.invoke("ReconcilerFunction", {"mode": "full"})
    # THEN the message was parked once: counted once in the passes' reports and metrics
    parked = [invocation.response["dead_letters"]["poison"] for invocation in (first, second)]
    metric = sum(invocation.metrics.get("PoisonMessagesParked", 0) for invocation in (first, second))
    assert sum(parked) == 1, parked
    assert metric == 1
    assert second.response["dead_letters"]["already_parked"] == 1
    # AND it is still in its DLQ for a person to look at
    assert real.queue_depth("OrdersDLQ") == 1
