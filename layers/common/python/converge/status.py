"""A status machine as data: which status may move to which, and the one error a refused move raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from converge.errors import TransitionNotAllowedError

S = TypeVar("S", bound=Enum)


@dataclass(frozen=True)
class StatusMachine(Generic[S]):
    """An entity kind's statuses and the moves between them (`transitions`: status -> the statuses it may become).

    Nothing moves unless the table says so, so a late or duplicate event can never move an entity backwards."""

    entity: str  # how errors name the entity ("order", "shipment"); also the `<entity>_status` of a 409's body
    transitions: Mapping[S, frozenset[S]]

    def allows(self, current: S, target: S) -> bool:
        return target in self.transitions[current]

    def sources_of(self, target: S) -> frozenset[S]:
        """Every status an entity may be in to move to `target` (the condition of a blind conditional write)."""
        return frozenset(status for status, targets in self.transitions.items() if target in targets)

    def check(self, entity_id: str, current: S, target: S) -> None:
        """Nothing if `current` may become `target`; otherwise TransitionNotAllowedError (a 409 naming `current`)."""
        if not self.allows(current, target):
            raise TransitionNotAllowedError(self.entity, entity_id, current, target)
