"""What localcloud's parts need from the LocalCloud that runs them, stated as Protocols.

The parts that LocalCloud builds and that call back into it (the HTTP server, the archive's replays) are typed
against these, not against `localcloud.cloud`: they never import it, so the cloud imports its parts and no part
imports the cloud. LocalCloud satisfies every Protocol here (mypy checks it where the cloud hands itself over).
The fault injector states its own needs (`localcloud.faults.drift.Cloud`).
"""

from __future__ import annotations

from typing import Any, Protocol


class Clock(Protocol):
    """The time the emulations see (localcloud.clock.Clock)."""

    def now(self) -> float: ...  # epoch seconds


class Deployment(Protocol):
    """The deployed stack's resources."""

    @property
    def physical(self) -> dict[str, str]: ...  # logical id -> physical id


class Response(Protocol):
    """An HTTP response, as the server writes it (localcloud.httpapi.HttpResponse)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def body(self) -> bytes: ...


class ApiHost(Protocol):
    """What the HTTP server (localcloud.httpapi.ApiServer) needs: the API's routing, and a log."""

    def http(
        self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None, raw_query: str = ""
    ) -> Response: ...

    def log(self, line: str) -> None: ...


class ArchiveHost(Protocol):
    """What the bus archive's replays (localcloud.archive.ArchiveEmulator) need: the bus, its rules, the clock."""

    @property
    def clients(self) -> Any: ...  # boto3 clients by service name (events, sqs)

    @property
    def clock(self) -> Clock: ...

    @property
    def deployment(self) -> Deployment: ...

    def bus_name(self, logical_id: str = "Bus") -> str: ...

    def rules(self, bus: str = "Bus") -> list[dict[str, Any]]: ...
