"""What to do with one message from a dead-letter queue: acknowledge, redrive, or park it for a person."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class DeadLetterKind(StrEnum):
    STREAM_BATCH = "stream_batch"  # a stream mapping's OnFailure record: metadata only, repaired from state
    EVENT = "event"  # a valid event that failed to apply: transient, redriven
    POISON = "poison"  # cannot be parsed or has been redriven too often: parked with its reason


MAX_REDRIVES = 3


@dataclass(frozen=True)
class Verdict:
    kind: DeadLetterKind
    reason: str


def judge_dead_letter(body: dict[str, Any] | None, parse_error: str | None, redrives: int) -> Verdict:
    """Decide what to do with one DLQ message (body already JSON-decoded, or the parse error)."""
    if body is not None and "DDBStreamBatchInfo" in body:
        info = body["DDBStreamBatchInfo"]
        return Verdict(
            DeadLetterKind.STREAM_BATCH,
            f"stream batch {info.get('startSequenceNumber')}..{info.get('endSequenceNumber')} "
            f"({body.get('requestContext', {}).get('condition', 'failed')}); repaired from state",
        )
    if parse_error is not None:
        return Verdict(DeadLetterKind.POISON, parse_error)
    if redrives >= MAX_REDRIVES:
        return Verdict(DeadLetterKind.POISON, f"still failing after {redrives} redrives")
    return Verdict(DeadLetterKind.EVENT, "valid event; redriven to its inbox")
