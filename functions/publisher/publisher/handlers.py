"""Stream publisher: one function per publishing service's table stream (converge.contracts), code in the layer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge import aws
from converge.bus import EventSender
from converge.entry import Wiring, publisher_entry
from converge.publisher import publish_records, stream_records
from converge.settings import PublisherSettings

# The composition root: the settings are the whole of it (the EventBridge client is created once, lazily).
config = Wiring(PublisherSettings, lambda settings: settings)


@publisher_entry(config)
@event_source(data_class=DynamoDBStreamEvent)
def handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    settings = config()
    sender = EventSender(aws.events(), max_attempts=settings.put_events_max_attempts)
    records = stream_records(event)
    return publish_records(
        records, sender, settings.event_bus_name, emit_versions=settings.emit_schema_versions
    ).response()
