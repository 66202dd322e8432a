"""What `sam local invoke` takes besides the event, in its formats, for `python -m localcloud invoke`:
`--parameter-overrides "Key=Value ..."` (the template's parameters) and `--env-vars env.json` (functions'
environment variables). Both are checked when the command line is parsed, then against the template.

SAM CLI's rules, kept here: an env-vars file is `{"FunctionLogicalId": {"VAR": "value"}}` and/or
`{"Parameters": {"VAR": "value"}}` (every function); a function's own entry wins over `Parameters`; only variables
the template gives the function are overridden (others are ignored); true and false become "true" and "false".
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import RootModel, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

EVERY_FUNCTION = "Parameters"  # the env-vars file's key for variables of every function
PARAMETER_KEY = "[A-Za-z0-9]+"  # CloudFormation's parameter names: alphanumeric
LONG_FORM = re.compile(rf"ParameterKey=({PARAMETER_KEY}),ParameterValue=(.*)", re.DOTALL)
SHORT_FORM = re.compile(rf"({PARAMETER_KEY})=(.*)", re.DOTALL)

Scalar = StrictStr | StrictBool | StrictInt | StrictFloat | None


class EnvVars(RootModel[dict[str, dict[str, Scalar]]]):
    """An `--env-vars` file: variables by function logical id, and under "Parameters" for every function."""

    def functions(self) -> list[str]:
        """The logical ids the file names."""
        return [key for key in self.root if key != EVERY_FUNCTION]

    def for_function(self, logical_id: str) -> dict[str, str]:
        """The variables the file sets for `logical_id`: "Parameters", then the function's own entry on top."""
        merged = {**self.root.get(EVERY_FUNCTION, {}), **self.root.get(logical_id, {})}
        return {name: _stringify(value) for name, value in merged.items()}


def _stringify(value: str | bool | int | float | None) -> str:
    """As SAM CLI passes a value to Lambda's environment: strings, with true/false lowercase and null empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def env_vars_file(text: str) -> EnvVars:
    """An argparse type: the path of an env-vars file, read and checked."""
    try:
        document = json.loads(Path(text).read_text())
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text} is not JSON: {exc}") from None
    try:
        return EnvVars.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        shape = '{"FunctionLogicalId": {"VAR": "value"}, "Parameters": {"VAR": "value"}}'
        raise argparse.ArgumentTypeError(
            f"{text} is not an env-vars file ({shape}): {where + ': ' if where else ''}{first['msg']}"
        ) from None


def parameter_overrides(text: str) -> dict[str, str]:
    """An argparse type: "Key=Value Key2=Value2" or "ParameterKey=Key,ParameterValue=Value ...", values quoted
    as a shell quotes them, as `sam local invoke --parameter-overrides` takes them."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} in {text!r}") from None
    if not tokens:
        raise argparse.ArgumentTypeError("expected Key=Value pairs, got nothing")
    overrides: dict[str, str] = {}
    for token in tokens:
        matched = LONG_FORM.fullmatch(token) or SHORT_FORM.fullmatch(token)
        if matched is None:
            raise argparse.ArgumentTypeError(
                f"{token!r} is neither Key=Value nor ParameterKey=Key,ParameterValue=Value"
            )
        overrides[matched.group(1)] = matched.group(2)
    return overrides


def parameter_problem(overrides: Mapping[str, str], declared: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why CloudFormation would refuse these overrides of the template's `declared` parameters (one line), or None:
    a parameter the template does not declare, a value outside its AllowedValues, not a number, or out of range."""
    for key, value in overrides.items():
        if key not in declared:
            return f"the template declares no parameter {key!r} (it declares {', '.join(sorted(declared))})"
        spec = declared[key]
        allowed = [str(option) for option in spec.get("AllowedValues", [])]
        if allowed and value not in allowed:
            return f"{key}={value!r} is not one of its AllowedValues: {', '.join(allowed)}"
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                return f"{key}={value!r} is not a number"
            low, high = spec.get("MinValue"), spec.get("MaxValue")
            if low is not None and number < float(low):
                return f"{key}={value} is below its MinValue {low}"
            if high is not None and number > float(high):
                return f"{key}={value} is above its MaxValue {high}"
    return None


def unknown_functions(env_vars: EnvVars, functions: Iterable[str]) -> list[str]:
    """The function logical ids the env-vars file names that the template does not have."""
    known = set(functions)
    return [name for name in env_vars.functions() if name not in known]
