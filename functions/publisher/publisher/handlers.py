"""Stream publisher: one function per publishing service's table stream (converge.contracts), code in the layer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge import aws
from converge.bus import EventSender
from converge.observability import logger, metrics, traced
from converge.publisher import publish_records, stream_records
from converge.settings import settings


@traced
@logger.inject_lambda_context
@metrics.log_metrics
@event_source(data_class=DynamoDBStreamEvent)
def handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    config = settings()
    sender = EventSender(aws.events(), max_attempts=config.put_events_max_attempts)
    records = stream_records(event)
    return publish_records(records, sender, config.event_bus_name, emit_versions=config.emit_schema_versions).response()
