"""Stream publisher: one function per table stream (OrdersTable, InventoryTable), code shared in the layer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge import aws
from converge.bus import EventSender
from converge.observability import logger, metrics, traced
from converge.publisher import publish_records
from converge.settings import settings


@traced
@logger.inject_lambda_context
@metrics.log_metrics
@event_source(data_class=DynamoDBStreamEvent)
def handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    config = settings()
    sender = EventSender(aws.events(), max_attempts=config.put_events_max_attempts)
    return publish_records(list(event.records), sender, config.event_bus_name).response()
