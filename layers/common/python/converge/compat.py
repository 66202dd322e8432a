"""The compatibility gate: the models' schemas against the released contracts in events/schemas/<type>/v<N>.json.

    python -m converge.compat events/schemas      (`make schema-check`, part of `make test`)

A released version is a promise to both sides of the bus: consumers still on the older code validate the newest
producers' events against it, and consumers on the newer code read events (and archives) the older producers
wrote. So a change to a released version must accept exactly what it accepted, plus optional fields on objects
that ignore unknown ones. Anything else is breaking (docs/events.md, "Versions") and needs the next version:
the current model moves to converge.upcast.PREVIOUS with its steps, and `make schemas` releases v<N+1>.json.

The comparison is structural, over the JSON Schema pydantic generates (`$ref`/`$defs`, `anyOf` for optional
values, `allOf` for pinned metadata, `const`, `enum`, bounds, `pattern`, `required`, `additionalProperties`).
A field's `x-meaning` says what its value means: changing it is breaking even where the shape stays the same.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from converge.contracts import EVENT_TYPES
from converge.envelope import detail_json_schema
from converge.upcast import accepted_versions, latest_version

Schema = dict[str, Any]

# Keywords that say nothing about which instances are valid (the documentation a field carries).
_ANNOTATIONS = frozenset({"title", "description", "examples", "$comment", "$id", "$schema", "$defs"})
# Bounds: the direction a change moves them in says whether it tightens or widens.
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
# Handled by name below; every other keyword must be equal.
_STRUCTURAL = frozenset({"type", "enum", "const", "properties", "required", "additionalProperties", "items"})
_STRUCTURAL |= frozenset({"anyOf", "oneOf", "allOf", "$ref", "default", "x-meaning", *_LOWER, *_UPPER})
VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.json$")


class _Side:
    """One schema with its `$defs`, so `$ref`s resolve inside the document they come from."""

    def __init__(self, root: Schema) -> None:
        self.defs: dict[str, Schema] = root.get("$defs", {})

    def resolve(self, node: Schema) -> Schema:
        seen = set()
        while "$ref" in node:
            ref = str(node["$ref"])
            if ref in seen or not ref.startswith("#/$defs/"):
                raise ValueError(f"cannot resolve {ref}")
            seen.add(ref)
            node = {**self.defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}}
        return node


def _fmt(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _branch_key(side: _Side, node: Schema) -> str:
    """What pairs a branch of an old `anyOf` with its counterpart in the new one."""
    if "$ref" in node:
        return f"ref:{str(node['$ref']).rsplit('/', 1)[-1]}"
    resolved = side.resolve(node)
    if "const" in resolved:
        return f"const:{_fmt(resolved['const'])}"
    return f"type:{_fmt(resolved.get('type'))}"


def _compare(
    old_side: _Side, old: Schema, new_side: _Side, new: Schema, at: str, seen: set[tuple[int, int]]
) -> Iterator[str]:
    key = (id(old), id(new))
    if key in seen:  # a recursive definition met again at the same pair: already being compared
        return
    seen.add(key)
    old, new = old_side.resolve(old), new_side.resolve(new)
    where = at or "(root)"

    if old.get("x-meaning") != new.get("x-meaning"):
        yield f"{where}: meaning changed ({_fmt(old.get('x-meaning'))} -> {_fmt(new.get('x-meaning'))})"
    if old.get("type") != new.get("type"):
        yield f"{where}: type changed ({_fmt(old.get('type'))} -> {_fmt(new.get('type'))})"
    if old.get("const", ...) != new.get("const", ...):
        if "const" not in new:
            yield f"{where}: const {_fmt(old['const'])} removed (old consumers reject any other value)"
        elif "const" not in old:
            yield f"{where}: const {_fmt(new['const'])} added (tightened)"
        else:
            yield f"{where}: const changed ({_fmt(old['const'])} -> {_fmt(new['const'])})"
    if "enum" in old or "enum" in new:
        before, after = old.get("enum"), new.get("enum")
        if before is None or after is None:
            yield f"{where}: enum {'added' if before is None else 'removed'}"
        else:
            if removed := [v for v in before if v not in after]:
                yield f"{where}: narrower enum ({', '.join(map(_fmt, removed))} removed)"
            if added := [v for v in after if v not in before]:
                yield f"{where}: wider enum ({', '.join(map(_fmt, added))} added: old consumers reject it)"
    if old.get("default", ...) != new.get("default", ...):
        change = f"{_fmt(old.get('default'))} -> {_fmt(new.get('default'))}"
        yield f"{where}: default changed ({change}): an absent value means another thing"
    for bound in (*_LOWER, *_UPPER):
        before, after = old.get(bound), new.get(bound)
        if before == after:
            continue
        if before is None or after is None:
            yield f"{where}: {bound} {'added' if before is None else 'removed'} ({_fmt(before)} -> {_fmt(after)})"
            continue
        tightened = after > before if bound in _LOWER else after < before
        change = "tightened" if tightened else "widened: old consumers reject the new values"
        yield f"{where}: {bound} {before} -> {after} ({change})"
    for keyword in sorted((set(old) | set(new)) - _STRUCTURAL - _ANNOTATIONS):
        if keyword.startswith("x-"):
            continue  # other extensions (x-source, x-entity, x-schema-version) are documentation
        if old.get(keyword) != new.get(keyword):
            yield f"{where}: {keyword} changed ({_fmt(old.get(keyword))} -> {_fmt(new.get(keyword))})"

    yield from _compare_object(old_side, old, new_side, new, at, seen)
    if "items" in old or "items" in new:
        if "items" in old and "items" in new:
            yield from _compare(old_side, old["items"], new_side, new["items"], f"{at}[]", seen)
        else:
            yield f"{where}: items {'added' if 'items' in new else 'removed'}"
    for combinator in ("anyOf", "oneOf", "allOf"):
        yield from _compare_branches(old_side, old, new_side, new, at, combinator, seen)


def _compare_object(
    old_side: _Side, old: Schema, new_side: _Side, new: Schema, at: str, seen: set[tuple[int, int]]
) -> Iterator[str]:
    where = at or "(root)"
    old_props: dict[str, Schema] = old.get("properties", {})
    new_props: dict[str, Schema] = new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
    for name in old_props:
        path = f"{at}.{name}" if at else name
        if name not in new_props:
            yield f"{path}: field removed (or renamed)"
            continue
        if name in old_required and name not in new_required:
            yield f"{path}: no longer required (old consumers need it)"
        elif name in new_required and name not in old_required:
            yield f"{path}: now required (tightened: events without it are refused)"
        yield from _compare(old_side, old_props[name], new_side, new_props[name], path, seen)
    for name in new_props:
        if name in old_props:
            continue
        path = f"{at}.{name}" if at else name
        if name in new_required:
            yield f"{path}: new required field (tightened: events without it are refused)"
        elif old_extra is False:
            yield f"{path}: new field on an object that forbids unknown fields (old consumers reject it)"
    if isinstance(old_extra, dict) and isinstance(new_extra, dict):
        yield from _compare(old_side, old_extra, new_side, new_extra, f"{at}{{*}}", seen)
    elif old_extra != new_extra:
        yield f"{where}: additionalProperties changed ({_fmt(old_extra)} -> {_fmt(new_extra)})"


def _compare_branches(
    old_side: _Side, old: Schema, new_side: _Side, new: Schema, at: str, combinator: str, seen: set[tuple[int, int]]
) -> Iterator[str]:
    where = at or "(root)"
    before: list[Schema] = old.get(combinator, [])
    after: list[Schema] = new.get(combinator, [])
    if not before and not after:
        return
    if combinator == "allOf":  # every part must hold: compared in order
        if len(before) != len(after):
            yield f"{where}: allOf has {len(after)} parts instead of {len(before)}"
            return
        for index, (a, b) in enumerate(zip(before, after, strict=True)):
            yield from _compare(old_side, a, new_side, b, f"{at}[allOf {index}]", seen)
        return
    old_keys = {_branch_key(old_side, b): b for b in before}
    new_keys = {_branch_key(new_side, b): b for b in after}
    for key in old_keys.keys() - new_keys.keys():
        yield f"{where}: {combinator} alternative {key} removed"
    for key in new_keys.keys() - old_keys.keys():
        yield f"{where}: {combinator} alternative {key} added (old consumers reject it)"
    for key in old_keys.keys() & new_keys.keys():
        yield from _compare(old_side, old_keys[key], new_side, new_keys[key], at, seen)


def breaking_changes(released: Schema, current: Schema) -> list[str]:
    """What makes `current` break the contract `released` promised; [] if it accepts the same events
    (optional fields added to objects that ignore unknown ones, documentation changed)."""
    return sorted(set(_compare(_Side(released), released, _Side(current), current, "", set())))


def released_versions(directory: Path) -> dict[int, Path]:
    """Version -> file, for one event type's directory of released contracts."""
    found = {}
    for path in directory.glob("*.json"):
        match = VERSION_FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def check(schemas: Path) -> list[str]:
    """Every problem between the models and the released contracts under `schemas` ([] if none).

    Each version the code accepts (converge.upcast) must be released and unbroken; a released version newer than
    the code's is a model that was lost; older released versions are history the code no longer reads."""
    problems = []
    for event_type in sorted(EVENT_TYPES):
        released = released_versions(schemas / event_type)
        newest = latest_version(event_type)
        for version in accepted_versions(event_type):
            path = released.get(version)
            if path is None:
                hint = "release it with `make schemas`"
                problems.append(
                    f"{event_type} v{version}: not released ({schemas / event_type}/v{version}.json); {hint}"
                )
                continue
            current = detail_json_schema(event_type, version)
            for change in breaking_changes(json.loads(path.read_text()), current):
                next_version = f"v{newest + 1}" if version == newest else f"v{version} (released, frozen)"
                problems.append(
                    f"{event_type} v{version}: {change} -- a breaking change needs a new version ({next_version})"
                )
        for version in sorted(v for v in released if v > newest):
            problems.append(f"{event_type} v{version}: released, but the code's newest version is v{newest}")
    return problems


def main(argv: list[str]) -> int:
    schemas = Path(argv[0] if argv else "events/schemas")
    problems = check(schemas)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(
            f"schema check: {len(problems)} problem(s) against {schemas} (docs/events.md, 'Versions')", file=sys.stderr
        )
        return 1
    print(f"schema check: every model keeps its released contract in {schemas}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
