"""What a pass reads, and how it is keyed: the source entities every contract declares, their projections, and
the scope of an incremental pass (the entities it compares, each with its whole neighbourhood)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from converge.contracts import SERVICES, with_tables
from converge.projections import ORDER, PRODUCT, PROJECTIONS, EntityLayout, Item, Key, Projection
from reconciler.findings import RESERVED_COUNTER, Findings

# Every source entity layout the contracts declare (what a pass reads first, and what scopes are made of).
SOURCES: tuple[EntityLayout, ...] = tuple(layout for service in SERVICES for layout in service.layouts)


def version_of(item: Item | None) -> int:
    """An item's `version` (0 for an absent item or one without a version)."""
    return int(item.get("version") or 0) if item else 0


@dataclass
class Snapshot:
    """The items reconciliation compares: table role -> (pk, sk) -> item."""

    tables: dict[str, dict[Key, Item]] = field(default_factory=lambda: {s.name: {} for s in with_tables()})

    @classmethod
    def of(cls, **items: Iterable[Item]) -> Snapshot:
        """A snapshot of the given items, by service: `Snapshot.of(inventory=[...], orders=[...])`."""
        snapshot = cls()
        for role, found in items.items():
            snapshot.add(role, found)
        return snapshot

    def add(self, role: str, items: Iterable[Item]) -> None:
        table = self.tables.setdefault(role, {})
        for item in items:
            table[(str(item["pk"]), str(item["sk"]))] = item

    def entities(self, layout: EntityLayout) -> dict[str, Item]:
        """Entity id -> item, for the items of one layout."""
        found: dict[str, Item] = {}
        for (pk, sk), item in self.tables.get(layout.table, {}).items():
            entity_id = layout.id_of(pk, sk)
            if entity_id is not None:
                found[entity_id] = item
        return found

    def projected(self, projection: Projection) -> dict[str, dict[Key, Item]]:
        """Source id -> the projection's stored items, keyed."""
        grouped: dict[str, dict[Key, Item]] = {}
        for key, item in self.tables.get(projection.table, {}).items():
            entity_id = projection.source_id_of(*key)
            if entity_id is not None:
                grouped.setdefault(entity_id, {})[key] = item
        return grouped

    def refreshed(self, role: str, keys: Iterable[Key], items: Iterable[Item]) -> Snapshot:
        """A copy in which the items at `keys` of one table are replaced by a fresher read of them (`items`;
        a key read again and not found is absent in the copy)."""
        copy = Snapshot({name: dict(table) for name, table in self.tables.items()})
        for key in keys:
            copy.tables.setdefault(role, {}).pop(key, None)
        copy.add(role, items)
        return copy

    @property
    def checked(self) -> int:
        """The distinct source entities in the snapshot (an order, its reservation and shipment count once)."""
        return len({(layout.kind, entity_id) for layout in SOURCES for entity_id in self.entities(layout)})


@dataclass(frozen=True)
class Scope:
    """The entities an incremental pass compares: product ids and order ids (an order's reservation shares it)."""

    products: frozenset[str] = frozenset()
    orders: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.products) + len(self.orders)

    def union(self, other: Scope) -> Scope:
        return Scope(self.products | other.products, self.orders | other.orders)

    def ids_of(self, layout: EntityLayout) -> frozenset[str]:
        """The scope's ids of the entity kind whose items have this layout."""
        return self.products if layout.kind == PRODUCT.kind else self.orders

    @classmethod
    def of_items(cls, items: Iterable[Item]) -> Scope:
        """The entities that source items (every contract's entity layouts) belong to."""
        ids: dict[str, set[str]] = {PRODUCT.kind: set(), ORDER.kind: set()}
        for item in items:
            pk, sk = str(item["pk"]), str(item["sk"])
            for layout in SOURCES:
                if (entity_id := layout.id_of(pk, sk)) is not None:
                    ids[layout.kind].add(entity_id)
                    break
        return cls(frozenset(ids[PRODUCT.kind]), frozenset(ids[ORDER.kind]))

    @classmethod
    def of_findings(cls, findings: Findings) -> Scope:
        """The entities found different: checked again next pass until their projections agree."""
        product_kinds = {p.name for p in PROJECTIONS if p.source == PRODUCT} | {RESERVED_COUNTER}
        everything = findings.all
        products = {f.entity_id for f in everything if f.projection in product_kinds}
        products |= {s.product_id for s in findings.recount_suspects}
        orders = {f.entity_id for f in everything if f.projection not in product_kinds}
        return cls(frozenset(products), frozenset(orders))


def _without(keys: dict[str, list[Key]], already: Snapshot | None) -> dict[str, list[Key]]:
    have = already.tables if already else {}
    return {role: sorted({k for k in wanted if k not in have.get(role, {})}) for role, wanted in keys.items()}


def source_keys(scope: Scope, already_read: Snapshot | None = None) -> dict[str, list[Key]]:
    """Table role -> the keys of the scope's source items (products; orders and their reservations) not yet read.

    Read first: the projection keys of an entity can depend on its source (a notification is keyed by the
    order's customer).
    """
    keys: dict[str, list[Key]] = {s.name: [] for s in with_tables()}
    for layout in SOURCES:
        keys[layout.table].extend(layout.key(entity_id) for entity_id in scope.ids_of(layout))
    return _without(keys, already_read)


def projection_keys(scope: Scope, sources: Snapshot) -> dict[str, list[Key]]:
    """Table role -> the keys of every declared projection item of the scope's entities not yet read.

    For each entity: the keys its source implies (`expected`) and every other key the projection's item could
    sit at (where a stale or forged item would be, whatever the source says now).
    """
    keys: dict[str, list[Key]] = {s.name: [] for s in with_tables()}
    for projection in PROJECTIONS:
        found = sources.entities(projection.source)
        for entity_id in sorted(scope.ids_of(projection.source)):
            keys[projection.table].extend(projection.keys_to_read(entity_id, found.get(entity_id)))
    return _without(keys, sources)
