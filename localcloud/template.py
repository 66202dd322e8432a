"""Reading template.yaml: the one place the project's resources are declared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The SAM template as a dict, CloudFormation short-form tags (!Ref, !GetAtt, ...) expanded."""
    return yaml_parse(path.read_text())  # type: ignore[no-any-return]


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


@dataclass(frozen=True)
class FunctionSpec:
    """A function of the template: where its code is and how it is called."""

    logical_id: str
    code_dir: Path
    handler: str
    timeout: int
    environment: dict[str, Any]
    events: dict[str, Any]

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def function_specs(template: dict[str, Any] | None = None, root: Path = ROOT) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function with Globals applied (environment values left unresolved)."""
    template = template or load_template()
    globals_fn = template.get("Globals", {}).get("Function", {})
    global_env = globals_fn.get("Environment", {}).get("Variables", {})
    specs = {}
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = resource["Properties"]
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        specs[name] = FunctionSpec(
            logical_id=name,
            code_dir=(root / props["CodeUri"]).resolve(),
            handler=props["Handler"],
            timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
            environment=env,
            events=props.get("Events", {}),
        )
    return specs
