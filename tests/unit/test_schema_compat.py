"""The compatibility gate (`make schema-check`): models against the released contracts in events/schemas.

Each test works on a temporary copy of the released contracts, so a breaking edit made on purpose never touches
the committed ones.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from converge import compat
from converge.contracts import EVENT_TYPES
from converge.envelope import detail_json_schema
from converge.events import OrderPlaced, Reason
from converge.schemas import render_all, write_schemas

ROOT = Path(__file__).resolve().parents[2]
RELEASED = ROOT / "events" / "schemas"
Schema = dict[str, Any]


@pytest.fixture
def released(tmp_path: Path) -> Path:
    copy_of = tmp_path / "schemas"
    shutil.copytree(RELEASED, copy_of)
    return copy_of


def edit_released(released: Path, event_type: str, version: int, edit: Callable[[Schema], None]) -> None:
    path = released / event_type / f"v{version}.json"
    schema = json.loads(path.read_text())
    edit(schema)
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")


def use_model(monkeypatch: pytest.MonkeyPatch, event_type: str, model: type[OrderPlaced]) -> None:
    """The code as if `event_type`'s current model had been edited into `model`."""
    monkeypatch.setitem(EVENT_TYPES, event_type, EVENT_TYPES[event_type].model_copy(update={"model": model}))


def test_the_committed_contracts_pass_the_gate(released: Path) -> None:
    assert compat.check(released) == []
    assert compat.main([str(released)]) == 0


# ------------------------------------------------------------------ breaking edits made on purpose to a model
class ReasonRequired(OrderPlaced):
    """An order was accepted and awaits a stock reservation."""

    reason: Reason  # type: ignore[assignment]  # was optional


class CurrencyAsNumber(OrderPlaced):
    """An order was accepted and awaits a stock reservation."""

    currency: int  # type: ignore[assignment]  # was an ISO 4217 code


class NoShortages(OrderPlaced):
    """An order was accepted and awaits a stock reservation."""

    model_config = {"title": "OrderPlaced"}
    shortages: None = None  # type: ignore[assignment]  # the field's schema becomes null: removed in effect


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (ReasonRequired, "data.reason: now required"),
        (CurrencyAsNumber, "data.currency: type changed"),
        (NoShortages, "data.shortages: type changed"),
    ],
)
def test_a_breaking_edit_to_a_model_fails_the_gate_and_is_not_released(
    monkeypatch: pytest.MonkeyPatch, released: Path, model: type[OrderPlaced], expected: str
) -> None:
    # GIVEN OrderPlaced's model edited in a way that breaks its released v2, without a new version
    use_model(monkeypatch, "OrderPlaced", model)
    before = (released / "OrderPlaced" / "v2.json").read_text()
    # WHEN the gate runs
    problems = compat.check(released)
    # THEN it fails, naming the type, the version, the field and the version to release instead
    assert len(problems) >= 1
    assert all(p.startswith("OrderPlaced v2: ") and p.endswith("needs a new version (v3)") for p in problems)
    assert any(expected in p for p in problems), problems
    assert compat.main([str(released)]) == 1
    # AND `make schemas` refuses to overwrite the released contract with it
    refused = write_schemas(released, render_all())
    assert any(expected in r for r in refused)
    assert (released / "OrderPlaced" / "v2.json").read_text() == before


class WithGiftNote(OrderPlaced):
    """An order was accepted and awaits a stock reservation."""

    gift_note: Reason | None = None  # optional, on a payload that ignores unknown fields


def test_an_additive_edit_passes_the_gate_and_updates_the_released_version(
    monkeypatch: pytest.MonkeyPatch, released: Path
) -> None:
    # GIVEN OrderPlaced's model with a new optional field
    use_model(monkeypatch, "OrderPlaced", WithGiftNote)
    # THEN the gate passes: old consumers ignore the field, new ones default it
    assert compat.check(released) == []
    # AND `make schemas` writes it into v2 (no new version), which still passes
    assert write_schemas(released, render_all()) == []
    assert "gift_note" in (released / "OrderPlaced" / "v2.json").read_text()
    assert compat.check(released) == []


def test_a_version_the_code_accepts_but_nobody_released_fails_the_gate(released: Path) -> None:
    # GIVEN the released contracts without OrderConfirmed v2 (the model moved on, the file was never added)
    (released / "OrderConfirmed" / "v2.json").unlink()
    # THEN the gate says so, and `make schemas` releases it
    assert compat.check(released) == [
        f"OrderConfirmed v2: not released ({released}/OrderConfirmed/v2.json); release it with `make schemas`"
    ]
    write_schemas(released, render_all())
    assert compat.check(released) == []


def test_a_released_version_the_code_lost_fails_the_gate(released: Path) -> None:
    # GIVEN a v3 of OrderPlaced released while the code's newest is v2
    shutil.copy(released / "OrderPlaced" / "v2.json", released / "OrderPlaced" / "v3.json")
    # THEN the gate fails: the model of a released version is gone
    assert compat.check(released) == ["OrderPlaced v3: released, but the code's newest version is v2"]


# ------------------------------------------------------------------ the comparison itself, keyword by keyword
def order_placed_v2() -> Schema:
    return detail_json_schema("OrderPlaced", 2)


def line_of(schema: Schema) -> Schema:
    return schema["$defs"]["PricedOrderLine"]  # type: ignore[no-any-return]


def data_of(schema: Schema) -> Schema:
    return schema["$defs"]["OrderPlaced"]  # type: ignore[no-any-return]


def metadata_pins(schema: Schema) -> Schema:
    return schema["properties"]["metadata"]["allOf"][1]["properties"]  # type: ignore[no-any-return]


EDITS: list[tuple[str, Callable[[Schema], None], str]] = [
    ("new required field", lambda s: data_of(s)["required"].append("reason"), "data.reason: now required"),
    (
        "removed field",
        lambda s: data_of(s)["properties"].pop("shortages"),
        "data.shortages: field removed (or renamed)",
    ),
    (
        "renamed field",
        lambda s: data_of(s)["properties"].__setitem__("customer", data_of(s)["properties"].pop("customer_id")),
        "data.customer_id: field removed (or renamed)",
    ),
    ("type", lambda s: line_of(s)["properties"]["quantity"].update(type="string"), "quantity: type changed"),
    ("lower max", lambda s: line_of(s)["properties"]["quantity"].update(maximum=100), "maximum 10000 -> 100"),
    ("higher max", lambda s: line_of(s)["properties"]["quantity"].update(maximum=10**6), "(widened"),
    ("pattern", lambda s: data_of(s)["properties"]["currency"].update(pattern="^[A-Z]{2}$"), "pattern changed"),
    ("meaning", lambda s: line_of(s)["properties"]["unit_price"].update({"x-meaning": "in major units"}), "meaning"),
    ("const", lambda s: metadata_pins(s)["producer"].update(const="inventory"), "const changed"),
    ("status pin", lambda s: data_of(s)["properties"]["status"].update(const="CONFIRMED"), "const changed"),
    (
        "closed object grows",
        lambda s: line_of(s)["properties"].__setitem__("discount", {"type": "integer"}),
        "new field on an object that forbids unknown fields",
    ),
    ("default", lambda s: data_of(s)["properties"]["confirmed"].update(default=True), "default changed"),
    (
        "optional becomes nullable",
        lambda s: data_of(s)["properties"]["reason"]["anyOf"].append({"type": "integer"}),
        "alternative",
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [(e[1], e[2]) for e in EDITS], ids=[e[0] for e in EDITS])
def test_every_kind_of_breaking_change_is_named(edit: Callable[[Schema], None], expected: str) -> None:
    # GIVEN the schema of OrderPlaced v2, and a copy changed in one breaking way
    released = order_placed_v2()
    current = copy.deepcopy(released)
    edit(current)
    # THEN the comparison names it
    changes = compat.breaking_changes(released, current)
    assert any(expected in change for change in changes), changes


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda values: values.remove("remove"), 'narrower enum ("remove" removed)'),
        (lambda values: values.append("refund"), 'wider enum ("refund" added: old consumers reject it)'),
    ],
    ids=["narrower", "wider"],
)
def test_an_enum_that_loses_or_gains_a_value_is_breaking(edit: Callable[[list[str]], None], expected: str) -> None:
    # GIVEN ReservationCorrected's actions, one removed (tightened) or one added (old consumers cannot act on it)
    released = detail_json_schema("ReservationCorrected")
    current = copy.deepcopy(released)
    edit(current["$defs"]["ReservationAction"]["enum"])
    # THEN either is named
    assert compat.breaking_changes(released, current) == [f"data.action: {expected}"]


NON_BREAKING: list[tuple[str, Callable[[Schema], None]]] = [
    ("description", lambda s: data_of(s).update(description="Reworded.")),
    ("title", lambda s: line_of(s).update(title="Line")),
    ("optional field on an open object", lambda s: data_of(s)["properties"].__setitem__("note", {"type": "string"})),
    ("a $defs entry renamed", lambda s: s["$defs"].__setitem__("Unused", {"type": "string"})),
]


@pytest.mark.parametrize("edit", [e[1] for e in NON_BREAKING], ids=[e[0] for e in NON_BREAKING])
def test_documentation_and_optional_fields_are_not_breaking(edit: Callable[[Schema], None]) -> None:
    released = order_placed_v2()
    current = copy.deepcopy(released)
    edit(current)
    assert compat.breaking_changes(released, current) == []


def test_v2_of_the_order_events_is_breaking_against_v1_which_is_why_it_is_a_version() -> None:
    # GIVEN the released v1 and v2 of OrderPlaced
    v1 = json.loads((RELEASED / "OrderPlaced" / "v1.json").read_text())
    v2 = json.loads((RELEASED / "OrderPlaced" / "v2.json").read_text())
    # THEN what v2 changed could not have been an edit of v1
    assert compat.breaking_changes(v1, v2) == [
        "data.currency: new required field (tightened: events without it are refused)",
        "data.lines[].unit_price: new required field (tightened: events without it are refused)",
        "metadata[allOf 1].schema_version: const changed (1 -> 2)",
    ]
