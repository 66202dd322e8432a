"""Counting AWS requests with botocore's event hooks (no mocks of call arguments: the SDK tells us).

`RequestCounter.attach(client, actor)` registers `before-call` (one request, its items) and `after-call`
(messages a receive returned) handlers on a client's event system. The actor is either fixed (localcloud's
own clients: the emulated Lambda pollers) or resolved per call (`actor=None`: the function whose invocation
is running, from AWS_LAMBDA_FUNCTION_NAME, which the Lambda runtime - and localcloud's - sets).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def items_of(operation: str, params: dict[str, Any]) -> int:
    """How many items (entries, messages) one request carries: what the service bills or limits per item."""
    if operation == "PutEvents":
        return len(params.get("Entries", []))
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    if operation in ("DeleteMessageBatch", "SendMessageBatch"):
        return len(params.get("Entries", []))
    if operation == "BatchWriteItem":
        return sum(len(v) for v in params.get("RequestItems", {}).values())
    return 1


class RequestCounter:
    """Requests and items per (actor, service, operation); empty receives counted apart."""

    def __init__(self, actor_of: Callable[[], str] | None = None) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.items: Counter[tuple[str, str, str]] = Counter()
        self.received: Counter[str] = Counter()  # actor -> messages returned by ReceiveMessage
        self.empty_receives: Counter[str] = Counter()
        self.enabled = True
        self._actor_of = actor_of or _function_from_environment

    def attach(self, client: Any, actor: str | None = None) -> None:
        # before-parameter-build sees the API parameters (before-call sees the serialised HTTP request): items
        # are counted there; before-call fires once per API call (botocore's retries of it are not counted).
        def parameters(model: Any, params: dict[str, Any], **_: Any) -> None:
            if self.enabled:
                key = (actor or self._actor_of(), model.service_model.service_id.hyphenize(), model.name)
                self.items[key] += items_of(model.name, params)

        def before(model: Any, **_: Any) -> None:
            if self.enabled:
                self.requests[(actor or self._actor_of(), model.service_model.service_id.hyphenize(), model.name)] += 1

        def after(model: Any, parsed: dict[str, Any], **_: Any) -> None:
            if not self.enabled or model.name != "ReceiveMessage":
                return
            who = actor or self._actor_of()
            messages = len(parsed.get("Messages", []) or [])
            self.received[who] += messages
            if not messages:
                self.empty_receives[who] += 1

        # unique ids: attaching the same counter twice to one client must not double count
        client.meta.events.register("before-parameter-build", parameters, unique_id=f"bench-count-params-{id(self)}")
        client.meta.events.register("before-call", before, unique_id=f"bench-count-before-{id(self)}")
        client.meta.events.register("after-call", after, unique_id=f"bench-count-after-{id(self)}")

    def reset(self) -> None:
        self.requests.clear()
        self.items.clear()
        self.received.clear()
        self.empty_receives.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": {"|".join(k): v for k, v in sorted(self.requests.items())},
            "items": {"|".join(k): v for k, v in sorted(self.items.items())},
            "received": dict(self.received),
            "empty_receives": dict(self.empty_receives),
        }

    def total(self, *, actor: str | None = None, service: str | None = None, operations: set[str] | None = None) -> int:
        return sum(
            n
            for (a, s, o), n in self.requests.items()
            if (actor is None or a == actor)
            and (service is None or s == service)
            and (operations is None or o in operations)
        )

    def total_items(self, *, actor: str | None = None, service: str | None = None, operation: str | None = None) -> int:
        return sum(
            n
            for (a, s, o), n in self.items.items()
            if (actor is None or a == actor)
            and (service is None or s == service)
            and (operation is None or o == operation)
        )


def _function_from_environment() -> str:
    return os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "(outside a function)")
