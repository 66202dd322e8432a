"""Sending invocation records to an OnFailure/OnSuccess destination (SQS queue or SNS topic) by ARN."""

from __future__ import annotations

import json
from typing import Any


def send(clients: Any, destination_arn: str, record: dict[str, Any]) -> None:
    """Deliver `record` as JSON to the SQS queue or SNS topic `destination_arn`."""
    service = destination_arn.split(":")[2]
    body = json.dumps(record)
    if service == "sqs":
        _, _, _, _region, account, name = destination_arn.split(":", 5)
        url = clients.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        clients.sqs.send_message(QueueUrl=url, MessageBody=body)
    elif service == "sns":
        clients.sns.publish(TopicArn=destination_arn, Message=body)
    else:
        raise NotImplementedError(f"localcloud delivers destinations to SQS and SNS only, not {destination_arn}")
