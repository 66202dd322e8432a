"""The bus archive and StartReplay, emulated with the semantics EventBridge documents.

moto records every event of the bus in its AWS::Events::Archive (a managed rule that skips replayed events), but
its StartReplay sends the whole archive synchronously, in order, to every rule of the bus, ignoring
`Destination.FilterArns` and the time window. localcloud keeps moto's recording and replays beside it:

- archiving lags: an event becomes replayable `ARCHIVE_LAG_SECONDS` (localcloud's clock) after it was put;
  a replay whose window reaches into the last minutes misses those events (they come from the live stream);
- a replay is processed in one-minute slices of ingestion time, one slice per `step()`, and the events of a
  slice are delivered in no particular order (shuffled with a seeded generator);
- `FilterArns` limits delivery to those rules (each still matches its own pattern); without it every rule of
  the bus that matches receives the event, except the archive's own;
- a replayed event carries `replay-name` and a new `id`; its `detail` is unchanged.

In-process (moto's mock_aws) only: the recorded events are read from moto's backend.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from localcloud.ports import ArchiveHost

ARCHIVE_LAG_SECONDS = 180.0  # "events can take a few minutes to arrive in the archive"
SLICE_SECONDS = 60.0


class ReplayState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class ArchivedEvent:
    ingested_at: float  # localcloud's clock
    event: dict[str, Any]


@dataclass
class Replay:
    name: str
    rules: list[str]  # rule names on the bus the replay delivers to
    slices: list[list[ArchivedEvent]]
    state: ReplayState = ReplayState.STARTING
    delivered: int = 0  # event x rule deliveries
    replayed: int = 0  # archived events processed

    @property
    def done(self) -> bool:
        return self.state is ReplayState.COMPLETED


@dataclass
class ArchiveEmulator:
    """Recording (read from moto's archive with localcloud's clock as ingestion time) and replays."""

    cloud: ArchiveHost  # the LocalCloud whose bus this archives
    seed: int = 0
    lag_seconds: float = ARCHIVE_LAG_SECONDS
    recorded: list[ArchivedEvent] = field(default_factory=list)
    replays: dict[str, Replay] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._seen = 0

    def _moto_archive(self) -> Any:
        from moto.events.models import events_backends

        from localcloud import deploy

        if "Bus" not in self.cloud.deployment.physical:
            return None  # a template without the bus (localcloud's own test fixtures)
        backend = events_backends[deploy.ACCOUNT_ID][deploy.REGION]
        bus = self.cloud.bus_name()
        archives = [a for a in backend.archives.values() if a.event_bus_name == bus]
        return archives[0] if archives else None

    def record(self) -> None:
        """Stamp events moto archived since the last call with the clock's time (called by every pump)."""
        archive = self._moto_archive()
        if archive is None:
            return
        now = self.cloud.clock.now()
        for event in archive.events[self._seen :]:
            self.recorded.append(ArchivedEvent(now, dict(event)))
        self._seen = len(archive.events)

    def archived(self, start: float | None = None, end: float | None = None) -> list[ArchivedEvent]:
        """What a replay of [start, end) can see now: ingested in the window and past the archiving lag."""
        self.record()
        visible_until = self.cloud.clock.now() - self.lag_seconds
        return [
            e
            for e in self.recorded
            if e.ingested_at <= visible_until
            and (start is None or e.ingested_at >= start)
            and (end is None or e.ingested_at < end)
        ]

    def start_replay(
        self, name: str, *, start: float | None = None, end: float | None = None, filter_arns: list[str] | None = None
    ) -> Replay:
        """StartReplay: events ingested in [start, end) to the rules in `filter_arns` (rule ARNs; None: all)."""
        if name in self.replays:
            raise ValueError(f"Replay {name} already exists.")
        rules = self._rule_names()
        if filter_arns is not None:
            wanted = {arn.rsplit("/", 1)[-1] for arn in filter_arns}
            unknown = wanted - set(rules)
            if unknown:
                raise ValueError(f"Destination.FilterArns names rules not on the bus: {sorted(unknown)}")
            rules = [r for r in rules if r in wanted]
        events = self.archived(start, end)
        slices: dict[int, list[ArchivedEvent]] = {}
        for archived in events:
            slices.setdefault(int(archived.ingested_at // SLICE_SECONDS), []).append(archived)
        ordered = [slices[k] for k in sorted(slices)]
        for chunk in ordered:
            self._rng.shuffle(chunk)  # within a slice, EventBridge promises no order
        replay = Replay(name, rules, ordered)
        self.replays[name] = replay
        return replay

    def step(self) -> int:
        """Deliver the next one-minute slice of every running replay; how many deliveries were made."""
        moved = 0
        for replay in self.replays.values():
            if replay.done:
                continue
            replay.state = ReplayState.RUNNING
            if not replay.slices:
                replay.state = ReplayState.COMPLETED
                continue
            for archived in replay.slices.pop(0):
                moved += self._deliver(replay, archived.event)
                replay.replayed += 1
            if not replay.slices:
                replay.state = ReplayState.COMPLETED
        return moved

    def run(self, name: str) -> Replay:
        """Step until the replay completes (the pipeline is pumped by the caller)."""
        replay = self.replays[name]
        while not replay.done:
            self.step()
        return replay

    # ------------------------------------------------------------------------------------------------ delivery
    def _rule_names(self) -> list[str]:
        rules = self.cloud.rules()
        return [r["Name"] for r in rules if r.get("EventPattern") and not r["Name"].startswith("Events-Archive-")]

    def _deliver(self, replay: Replay, event: dict[str, Any]) -> int:
        from moto.events.models import EventPattern

        events, sqs = self.cloud.clients.events, self.cloud.clients.sqs
        bus = self.cloud.bus_name()
        replayed = {**event, "id": str(uuid.UUID(int=self._rng.getrandbits(128))), "replay-name": replay.name}
        delivered = 0
        for rule in replay.rules:
            described = events.describe_rule(Name=rule, EventBusName=bus)
            pattern = EventPattern.load(described.get("EventPattern"))
            if not pattern.matches_event(replayed):  # type: ignore[arg-type]  # moto types it as a TypedDict
                continue
            for target in events.list_targets_by_rule(Rule=rule, EventBusName=bus)["Targets"]:
                arn = str(target["Arn"])
                if not arn.startswith("arn:aws:sqs:"):
                    raise NotImplementedError(f"{rule}: localcloud replays to SQS targets only, not {arn}")
                url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps(replayed))
                delivered += 1
        replay.delivered += delivered
        return delivered
