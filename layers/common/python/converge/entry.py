"""Lambda entry points, one way per function kind: the composition root, the decorator order, the correlation id.

A function declares its settings model and how its dependencies (its stores) are built from them:

    wiring = Wiring(TableSettings, lambda config: Stores(OrderStore(config.table_name)))

    @api_entry(wiring)
    def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return app.resolve(event, context)

Every kind wraps its handler the same way, outermost first: the logger (a fresh state per invocation, the
correlation id where the kind has one), the metrics flush, then X-Ray (only when tracing is on). Before the
handler runs, `wiring()` validates the settings (a missing table name fails the first invocation with one line
naming the variable) and builds the dependencies, once per container; use cases get them as arguments, and
unit tests hand in fakes instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from converge.observability import logger, metrics, traced
from converge.settings import FunctionSettings, load_settings, settings

SettingsT = TypeVar("SettingsT", bound=FunctionSettings)
DepsT = TypeVar("DepsT")
F = TypeVar("F", bound=Callable[..., Any])

# The correlation header, one spelling for every API (HTTP API v2 lowercases header names in the event).
CORRELATION_HEADER = "X-Correlation-Id"
# Where each kind finds its correlation id (JMESPath over the event): an API request's header, else its request
# id; a scheduled event's id. A consumer sets it per record (converge.consumer); a publisher's records have many.
API_CORRELATION_PATH = f'headers."{CORRELATION_HEADER.lower()}" || requestContext.requestId'
SCHEDULED_CORRELATION_PATH = "id"


class Wiring(Generic[SettingsT, DepsT]):
    """A function's composition root: its settings model, and how its dependencies are built from the settings.

    Calling it returns the dependencies, built once per settings (the settings are read once per container;
    a harness that clears them, as localcloud does per invocation, gets them rebuilt)."""

    def __init__(self, model: type[SettingsT], build: Callable[[SettingsT], DepsT]) -> None:
        self.model = model
        self.build = build
        self._built: tuple[object, DepsT] | None = None

    def __call__(self) -> DepsT:
        source = settings()
        if self._built is None or self._built[0] is not source:
            self._built = (source, self.build(load_settings(self.model)))
        return self._built[1]


def _entry(wiring: Wiring[Any, Any] | None, correlation_id_path: str | None) -> Callable[[F], F]:
    def decorate(handler: F) -> F:
        def entry(event: Any, context: Any) -> Any:
            # The logger's state was just cleared: its lines name this function's service, also where one
            # interpreter runs several functions' handlers (localcloud), whose layer module loaded once.
            logger.append_keys(service=settings().service)
            if wiring is not None:
                wiring()  # settings validated before any work: a miswired environment fails here, by name
            return handler(event, context)

        entry.__name__, entry.__doc__, entry.__qualname__ = handler.__name__, handler.__doc__, handler.__qualname__
        wrapped = metrics.log_metrics(traced(entry))
        inject = logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_id_path)
        return inject(wrapped)  # type: ignore[return-value]

    return decorate


def api_entry(wiring: Wiring[Any, Any]) -> Callable[[F], F]:
    """The entry point of an HTTP API function (correlation id: the X-Correlation-Id header, else the request id)."""
    return _entry(wiring, API_CORRELATION_PATH)


def consumer_entry(wiring: Wiring[Any, Any]) -> Callable[[F], F]:
    """The entry point of an inbox consumer (each record's correlation id is set while it is applied)."""
    return _entry(wiring, None)


def publisher_entry(wiring: Wiring[Any, Any]) -> Callable[[F], F]:
    """The entry point of a stream publisher (its records carry their own correlation ids)."""
    return _entry(wiring, None)


def scheduled_entry(wiring: Wiring[Any, Any] | None = None) -> Callable[[F], F]:
    """The entry point of a scheduled function (the correlation id: the scheduled event's id)."""
    return _entry(wiring, SCHEDULED_CORRELATION_PATH)


def task_entry(wiring: Wiring[Any, Any] | None = None) -> Callable[[F], F]:
    """The entry point of a state machine's task (no correlation id: its execution names the run)."""
    return _entry(wiring, None)
