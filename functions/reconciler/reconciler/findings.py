"""What a pass finds, and the repair each finding asks for: republish, correct, park, or recount.

A finding names what it is about (a declared projection, a saga pair, or the derived counter `reserved`) and how it
differs (a projection's `Difference`, or a saga pair's `Resolution`): both are declared in `converge.projections`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from converge.events import CorrectionData
from converge.projections import PROJECTIONS, SAGAS, Difference, Item, ProjectionName, Resolution, SagaName

CounterName = Literal["reserved"]
RESERVED_COUNTER: CounterName = "reserved"  # the name findings about products' `reserved` go by
# What a finding is about: a declared projection, a declared saga pair, or a derived counter.
Subject = ProjectionName | SagaName | CounterName


@dataclass(frozen=True)
class Finding:
    """One difference between a projection (or a saga side, or a counter) and what its source implies."""

    projection: Subject
    entity_id: str  # the source entity's id (product or order)
    difference: Difference | Resolution  # how a projection or counter differs, or what resolves a saga pair
    reason: str


@dataclass(frozen=True)
class Republish:
    """Forward repair: send the source's current state again (a versioned write applies it)."""

    finding: Finding
    source_item: Item = field(hash=False, compare=False)


@dataclass(frozen=True)
class Correction:
    """Repair against the grain of versions: a correction event the owning consumer applies if still valid."""

    finding: Finding
    data: CorrectionData = field(hash=False, compare=False)
    version: int | None = None  # the entity version the correction's metadata carries


@dataclass(frozen=True)
class Parked:
    """What needs a person: recorded once (kind, entity, detail), alarmed, never acted on automatically."""

    finding: Finding
    kind: str
    detail: str  # with kind and entity id, what makes a parked case distinct (the versions involved)
    attributes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class RecountSuspect:
    """A product whose `reserved` differs from its RESERVED reservations in this read (confirmed before acting)."""

    product_id: str
    version: int
    reserved: int
    counted: int
    on_hand: int = 0


@dataclass
class Findings:
    republish: list[Republish] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    parked: list[Parked] = field(default_factory=list)
    recount_suspects: list[RecountSuspect] = field(default_factory=list)
    unrepaired: list[Finding] = field(default_factory=list)  # found, but corrections are turned off
    deferred: list[Finding] = field(default_factory=list)  # left for the next pass (a repair waiting for another)

    @property
    def all(self) -> list[Finding]:
        return [
            *(r.finding for r in self.republish),
            *(c.finding for c in self.corrections),
            *(p.finding for p in self.parked),
            *self.unrepaired,
            *self.deferred,
        ]

    def count_by_projection(self) -> dict[str, int]:
        counts: dict[str, int] = (
            {p.name: 0 for p in PROJECTIONS} | {saga.name: 0 for saga in SAGAS} | {RESERVED_COUNTER: 0}
        )
        for finding in self.all:
            counts[finding.projection] = counts.get(finding.projection, 0) + 1
        counts[RESERVED_COUNTER] += len(self.recount_suspects)
        return counts

    def count_by_difference(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.all:
            counts[finding.difference.value] = counts.get(finding.difference.value, 0) + 1
        return counts
