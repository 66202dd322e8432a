"""Fault injection at the AWS boundary: the functions' SDK calls and localcloud's delivery paths.

    with LocalCloud(faults=FaultPlan(seed=7, handler_exception=0.1, dynamodb_throttle=0.05)) as cloud:
        ...                         # faults are injected from the start
        cloud.faults.stop()         # ... until stopped; cloud.faults.stats counts what was injected

Handler code is never edited. Faults reach a function only through what it calls or receives:

- SDK calls (botocore event hooks, registered on every botocore session through `botocore.handlers.
  BUILTIN_HANDLERS`, in front of moto's own `before-send` stub). They act only while a function invoked by an
  event source mapping or asynchronously (a schedule) runs; synchronous invocations (HTTP API, `invoke`) are
  left alone unless `FaultPlan.include_sync`.
  * throttling (`ProvisionedThroughputExceededException` on DynamoDB, `ThrottlingException` on EventBridge), per
    request **attempt** (`before-send`): the SDK's own retry handler sees an HTTP 400 with that error code and
    retries it as it would on AWS, so most throttles are absorbed by the SDK and a few reach the handler (after
    the client's max attempts). With `throttle_scope="call"` the error is returned to the handler at once
    (`before-call`), bypassing the SDK's retries. The SDK's backoff sleeps are recorded, not slept (localcloud
    never waits: see docs/localcloud.md).
  * PutEvents entries failed individually: chosen entries are taken out of the request
    (`before-parameter-build`) and put back into the response as `InternalFailure` entries (`after-call`), so
    they never reach the bus and the caller sees a partial failure with `FailedEntryCount`.
- Invocations (`Runtime.invoke`):
  * handler exception: an `InjectedFault` (a RuntimeError) is raised from the invocation's k-th SDK call
    (k uniform in 1..3, before that call is made), so the calls before it took effect - a crash mid-way. A batch
    consumer (Powertools BatchProcessor) catches it per record, so it becomes a batch item failure of that
    record; elsewhere it is a function error. A handler that makes fewer than k calls completes, then the
    invocation fails anyway (a crash after the work, before the response): its response is discarded.
  * handler timeout: the same, with `InjectedTimeout` (a BaseException, which no handler code catches) and the
    invocation reported as Lambda reports a timeout (`Sandbox.Timedout`): the work done before the cut stays.
- Deliveries (the SQS event source mappings of the inboxes: a message is the bus's delivery to the inbox):
  * lost: a message is deleted before its first delivery, as if the bus had never delivered it;
  * duplicate: a second copy of the message is sent to the inbox;
  * delayed: the message is held back for 1..`max_delay_polls` polls of its mapping;
  * reordered: each batch is shuffled (and delays reorder across batches);
  * poison: on a fraction of polls a malformed message (not JSON, unknown detail-type, wrong schema_version,
    missing metadata) is sent to the inbox; the consumer rejects it until SQS moves it to the DLQ.
  Lost, duplicated and delayed are decided once per message, on its first receive; `FaultPlan.event_types` narrows
  them to deliveries of those detail-types (one event lost on its way to one consumer).

- Drift (the state itself goes wrong, not a delivery): what a restore, a consumer bug or a forged message leaves
  behind. Not decided on a delivery path: `FaultInjector.drift(cloud)` rolls each drift kind once per call (the
  chaos command calls it after every scenario operation, so the rates are per operation), and each kind is an
  explicit method too (`rollback_source`, `corrupt_projection`, `delete_projection`, `forge_event`,
  `inject_orphan_saga_event`), which tests and the state machine call at a moment of their choosing.
  * source rollback: a source item (any contract's entity: order, product, reservation, shipment) is put back to an
    earlier image of itself, as
    copying items back from a point-in-time restore does: a PutItem of the old image (its old version and
    `updated_at`) straight into the table. Earlier images are read from the tables' streams (NEW_AND_OLD_IMAGES);
  * projection corruption: a notifications projection item (availability, order outcome, order notification)
    rewritten with wrong data at its current version, as a consumer bug would;
  * projection deletion: such an item deleted;
  * forged event: a valid event (right `source` and producer for its type, it parses) with a huge version and
    made-up data, sent straight into an inbox queue (SendMessage), bypassing the bus and its rules;
  * orphan saga event: a saga event for an order that does not exist (OrderPlaced with real products into the
    inventory inbox; StockReserved / StockReservationFailed into the orders inbox).

Every fault kind draws from its own `random.Random(f"{seed}:{kind}")`, so a run is reproducible and enabling one
fault does not change where the others strike.

The package, by concern: `plan` (FaultPlan, its rates and the seeded dice), `sdk` (the botocore hooks and the SDK
clock), `delivery` (the inboxes' deliveries and poison), `drift` (the state itself), `injector` (FaultInjector,
all four for one LocalCloud).
"""

from localcloud.faults.delivery import POISON_KINDS, Held, poison_body
from localcloud.faults.drift import (
    ATTACKER_TEXT,
    FORGED_KINDS,
    FORGED_VERSION,
    ORPHAN_KINDS,
    DriftFault,
    TableWatch,
    eventbridge_body,
)
from localcloud.faults.injector import FaultInjector
from localcloud.faults.plan import DRIFT_KINDS, DRIFT_RATE, DRIFT_STATS, FaultPlan
from localcloud.faults.sdk import INJECTED_MESSAGE, InjectedFault, InjectedTimeout, register, unregister

__all__ = [
    "ATTACKER_TEXT",
    "DRIFT_KINDS",
    "DRIFT_RATE",
    "DRIFT_STATS",
    "FORGED_KINDS",
    "FORGED_VERSION",
    "INJECTED_MESSAGE",
    "ORPHAN_KINDS",
    "POISON_KINDS",
    "DriftFault",
    "FaultInjector",
    "FaultPlan",
    "Held",
    "InjectedFault",
    "InjectedTimeout",
    "TableWatch",
    "eventbridge_body",
    "poison_body",
    "register",
    "unregister",
]
