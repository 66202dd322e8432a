"""tools.rebuild against a running LocalCloud: the archive emulation, the reconciler's backfill, the pump."""

from __future__ import annotations

from localcloud import convergence
from localcloud.archive import ARCHIVE_LAG_SECONDS
from localcloud.cloud import LocalCloud
from tools.rebuild import Target


def target(cloud: LocalCloud) -> Target:
    tables = convergence.service_tables(cloud)

    def backfill(projection: str) -> int:
        invocation = cloud.invoke("ReconcilerFunction", {"mode": "full", "projection": projection})
        return int(invocation.response["republished"]) if isinstance(invocation.response, dict) else 0

    def replay(name: str, service: str) -> int:
        rules = cloud.clients.events.list_rules(EventBusName=cloud.bus_name())["Rules"]
        rule = next(r["Arn"] for r in rules if f"{service.capitalize()}InboxRule" in r["Name"])
        # Everything archived up to the lag; the last minutes reach the consumer through the live stream.
        cloud.clock.advance(ARCHIVE_LAG_SECONDS + 1)
        started = cloud.archive.start_replay(name, filter_arns=[str(rule)])
        cloud.run_until_quiet()
        return started.replayed

    def settle() -> None:
        cloud.run_until_quiet()

    return Target(
        dynamodb=cloud.clients.dynamodb,
        tables=tables,
        backfill=backfill,
        replay=replay,
        settle=settle,
        divergent=lambda p: convergence.check(cloud.clients.dynamodb, tables).counts.get(p, 0),
    )
