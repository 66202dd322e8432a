"""Applying the reconciler's `ProjectionCorrected`: overwrite or delete one projection item, against its version.

A versioned write can repair a projection that is behind, never one that is ahead (a restore of its source, a
forged version), different at the same version (a consumer bug) or orphaned. A correction can, and is applied
whatever the stored version, but only if the stored item still holds what the reconciler observed (the compared
attributes, or absence): a legitimate write that landed since wins, and the reconciler looks again next pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from converge import aws
from converge.consumer import Outcome
from converge.dynamo import is_conditional_check_failure, to_item
from converge.errors import MalformedEventError
from converge.events import DomainEvent, ProjectionCorrected
from converge.observability import logger
from converge.projections import Projection


def still_as_observed(observed: Mapping[str, Any] | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(ConditionExpression, names, values) that hold only while the item is what was observed."""
    if observed is None:
        return "attribute_not_exists(pk)", {}, {}
    parts = ["attribute_exists(pk)"]
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for index, (name, value) in enumerate(sorted(observed.items())):
        names[f"#a{index}"] = name
        if value is None:
            parts.append(f"attribute_not_exists(#a{index})")
        else:
            parts.append(f"#a{index} = :a{index}")
            values[f":a{index}"] = value
    return " AND ".join(parts), names, to_item(values)


def correction_of(event: DomainEvent, owned: Mapping[str, Projection]) -> tuple[Projection, ProjectionCorrected]:
    """The correction and its declared projection; MalformedEventError if it is not one this service owns."""
    data = event.data
    if not isinstance(data, ProjectionCorrected):
        raise MalformedEventError(f"{event.event_type} is not a projection correction")
    projection = owned.get(data.projection)
    if projection is None:
        raise MalformedEventError(f"projection {data.projection!r} is not kept here")
    if projection.source_id_of(data.pk, data.sk) != data.entity_id:
        raise MalformedEventError(f"{data.pk}/{data.sk} is not a {data.projection} item of {data.entity_id}")
    return projection, data


def apply_projection_correction(table: str, event: DomainEvent, owned: Mapping[str, Projection]) -> Outcome:
    """Write (or delete) the corrected item if it is still as observed; STALE if it changed meanwhile."""
    projection, data = correction_of(event, owned)
    condition, names, values = still_as_observed(data.observed)
    key = to_item({"pk": data.pk, "sk": data.sk})
    extra: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
    if values:
        extra["ExpressionAttributeValues"] = values
    try:
        if data.expected is None:
            aws.dynamodb().delete_item(TableName=table, Key=key, ConditionExpression=condition, **extra)
        else:
            item = {**key, **to_item(dict(data.expected))}
            aws.dynamodb().put_item(TableName=table, Item=item, ConditionExpression=condition, **extra)
    except ClientError as exc:
        if not is_conditional_check_failure(exc):
            raise
        logger.info("correction skipped: the item changed since it was observed", extra={"key": [data.pk, data.sk]})
        return Outcome.STALE
    logger.info(
        "projection corrected",
        extra={"projection": projection.name, "key": [data.pk, data.sk], "reason": data.reason},
    )
    return Outcome.APPLIED
