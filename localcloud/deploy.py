"""Deploying a SAM template into moto: translate offline with samtranslator, create it with moto's CloudFormation.

Nothing of the template is re-declared here. The template is translated by the real SAM translator (CodeUri and
ContentUri rewritten to s3:// URIs of zips uploaded first, because moto's CloudFormation wants the code objects to
exist). What moto's CloudFormation cannot create, or must not run, is taken out of what it receives and kept, with
its properties resolved against the deployed stack, for localcloud to create through the service APIs or emulate:

- AWS::Lambda::EventSourceMapping: moto stores mappings but never runs them (and a stream mapping drains the stream
  buffer on its invoke attempts), so they are emulated (localcloud.streams, localcloud.sqs).
- Targets of schedule rules: scheduled rules never fire in moto, and a Lambda target makes moto's PutEvents raise;
  the rule is created without targets and fired by localcloud.schedules.
- Lambda targets of pattern rules: replaced by a shadow SQS queue that localcloud drains into asynchronous invokes.
- AWS::Lambda::EventInvokeConfig: unsupported by moto's CloudFormation; kept for the async invocation emulation.
- AWS::SQS::QueuePolicy, AWS::ApiGatewayV2::Api/Stage: unsupported; applied through the SQS and API Gateway APIs.
- AWS::StepFunctions::StateMachine: created through the API with its DefinitionSubstitutions applied, under the ARN
  its name gives (so that Refs to it resolve in the stack), and run by moto's interpreter (localcloud.stepfunctions).

The intrinsics in what was taken out (Ref/GetAtt/Sub/...) are resolved by moto itself: each becomes a stack output
of the template sent to moto, and its value is read back after the stack is created.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from localcloud.template import load_template

CODE_BUCKET = "localcloud-code"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
INTRINSICS = ("Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join", "Fn::If", "Fn::Select", "Fn::Split", "Fn::ImportValue")
EMULATED_TYPES = {"AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"}
CREATED_BY_API = {
    "AWS::SQS::QueuePolicy",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::CloudWatch::Alarm",
    # moto's CloudFormation reads only DefinitionString, not SAM's DefinitionSubstitutions (localcloud.stepfunctions).
    "AWS::StepFunctions::StateMachine",
}
_RESOLVE_PREFIX = "LocalcloudResolved"
_CONDITION_PREFIX = "LocalcloudCondition"


class OfflinePolicyLoader(ManagedPolicyLoader):  # type: ignore[misc]
    """Managed policy names -> ARNs without calling IAM: the ARN of an AWS managed policy is predictable."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return _AwsManagedPolicies()


class _AwsManagedPolicies(dict[str, str]):
    def __missing__(self, name: str) -> str:
        return f"arn:aws:iam::aws:policy/{name}"

    def __contains__(self, name: object) -> bool:
        # Only names that look like managed policy names are treated as such (a full ARN is passed through).
        return isinstance(name, str) and not name.startswith("arn:")

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        if name.startswith("arn:"):
            return default
        return self[name]


@dataclass
class Translated:
    """The translated template and where each piece of code lives locally."""

    template: dict[str, Any]
    code_dirs: dict[str, Path]  # S3 key -> local directory (functions and layers)


def _code_uri(value: Any, base: Path) -> Path | None:
    if isinstance(value, str) and not value.startswith("s3://"):
        return (base / value).resolve()
    return None


def translate(template: dict[str, Any], base: Path, parameters: dict[str, Any] | None = None) -> Translated:
    """SAM -> CloudFormation with the real translator, offline; local CodeUri/ContentUri become s3:// URIs."""
    source = copy.deepcopy(template)
    code_dirs: dict[str, Path] = {}
    global_code = source.get("Globals", {}).get("Function", {}).get("CodeUri")
    for logical_id, resource in source.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "InlineCode" not in props:
            local = _code_uri(props.get("CodeUri", global_code), base)
            if local is not None:
                key = f"functions/{logical_id}.zip"
                code_dirs[key] = local
                props["CodeUri"] = f"s3://{CODE_BUCKET}/{key}"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            local = _code_uri(props.get("ContentUri"), base)
            if local is not None:
                key = f"layers/{logical_id}.zip"
                code_dirs[key] = local
                props["ContentUri"] = f"s3://{CODE_BUCKET}/{key}"
    if "CodeUri" in source.get("Globals", {}).get("Function", {}):
        del source["Globals"]["Function"]["CodeUri"]
    values = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, **(parameters or {})}
    translated = transform(source, values, OfflinePolicyLoader())
    return Translated(template=translated, code_dirs=code_dirs)


def zip_dir(directory: Path) -> bytes:
    """A zip of a code directory (small: moto only needs the object to exist and be a zip)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory))
    return buffer.getvalue()


def _intrinsics(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in INTRINSICS:
            yield value
            return
        for v in value.values():
            yield from _intrinsics(v)
    elif isinstance(value, list):
        for v in value:
            yield from _intrinsics(v)


def _substitute(value: Any, resolved: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in INTRINSICS:
            return resolved[json.dumps(value, sort_keys=True)]
        return {k: _substitute(v, resolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, resolved) for v in value]
    return value


def _replace_refs(value: Any, physical: dict[str, str]) -> Any:
    """Replace Ref/${X} to resources localcloud created itself with their physical ids."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in physical:
            return physical[value["Ref"]]
        if set(value) == {"Fn::Sub"}:
            sub = value["Fn::Sub"]
            if isinstance(sub, str):
                for name, phys in physical.items():
                    sub = sub.replace("${" + name + "}", phys)
                return {"Fn::Sub": sub}
            if isinstance(sub, list):
                text = sub[0]
                for name, phys in physical.items():
                    text = text.replace("${" + name + "}", phys)
                return {"Fn::Sub": [text, _replace_refs(sub[1], physical)]}
        return {k: _replace_refs(v, physical) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_refs(v, physical) for v in value]
    return value


def _target_type(arn: Any, resources: dict[str, Any]) -> str | None:
    """The resource type an intrinsic target ARN points at (GetAtt X.Arn / Ref X)."""
    if isinstance(arn, dict):
        if "Fn::GetAtt" in arn:
            target = arn["Fn::GetAtt"]
            name = target[0] if isinstance(target, list) else str(target).split(".")[0]
            return str(resources.get(name, {}).get("Type"))
        if "Ref" in arn:
            return str(resources.get(arn["Ref"], {}).get("Type"))
    if isinstance(arn, str) and arn.startswith("arn:aws:lambda:"):
        return "AWS::Lambda::Function"
    return None


@dataclass
class Plan:
    """What moto's CloudFormation receives, and what localcloud keeps to create or emulate."""

    cfn_template: dict[str, Any]
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> resource (intrinsics unresolved)
    schedule_targets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # rule -> targets
    function_targets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # pattern rule -> lambda targets
    outputs_for: dict[str, str] = field(default_factory=dict)  # intrinsic (JSON) -> output name
    physical: dict[str, str] = field(default_factory=dict)  # resources localcloud created -> physical id


def moto_cfn_types() -> set[str]:
    """Resource types moto's CloudFormation can create."""
    from moto.cloudformation.parsing import get_model_map

    return set(get_model_map())


def plan(translated: dict[str, Any], physical: dict[str, str], supported: set[str] | None = None) -> Plan:
    """Split the translated template into moto's part and localcloud's part (see the module docstring).

    `physical` names what localcloud created before the stack (Refs to it are replaced by the physical id);
    resources of a type outside `supported` are kept out of moto (and created through the APIs, or skipped).
    """
    cfn = copy.deepcopy(translated)
    resources: dict[str, Any] = cfn["Resources"]
    result = Plan(cfn_template=cfn)
    supported = moto_cfn_types() if supported is None else supported
    for logical_id in list(resources):
        resource = resources[logical_id]
        kind = resource.get("Type")
        if kind in EMULATED_TYPES or kind in CREATED_BY_API or kind not in supported:
            result.kept[logical_id] = resources.pop(logical_id)
        elif kind == "AWS::Events::Rule":
            props = resource.get("Properties", {})
            targets = props.get("Targets", [])
            if "ScheduleExpression" in props:
                result.schedule_targets[logical_id] = props.pop("Targets", [])
            else:
                lambdas = [t for t in targets if _target_type(t.get("Arn"), resources) == "AWS::Lambda::Function"]
                if lambdas:
                    props["Targets"] = [t for t in targets if t not in lambdas]
                    result.function_targets[logical_id] = lambdas
    cfn["Resources"] = _replace_refs(resources, physical)
    cfn["Outputs"] = _replace_refs(cfn.get("Outputs", {}), physical)
    result.physical = dict(physical)
    # Every intrinsic localcloud must resolve becomes an output, so moto resolves it with the stack.
    wanted = list(_intrinsics(_replace_refs([result.kept, result.schedule_targets, result.function_targets], physical)))
    wanted += [{"Fn::GetAtt": [rule, "Arn"]} for rule in [*result.schedule_targets, *result.function_targets]]
    # moto gives an event bus no physical id; its name is read back the same way.
    wanted += [
        {"Fn::GetAtt": [bus, "Name"]} for bus, r in resources.items() if r.get("Type") == "AWS::Events::EventBus"
    ]
    # An output of a conditional resource's intrinsics carries its condition: moto refuses a GetAtt of a resource
    # its condition leaves out (AlarmEmailDLQ, named only by the conditional email subscription).
    unconditional = [r for r in result.kept.values() if "Condition" not in r]
    unconditional_keys = {json.dumps(i, sort_keys=True) for i in _intrinsics(_replace_refs(unconditional, physical))}
    conditions = {
        key: resource["Condition"]
        for resource in result.kept.values()
        if "Condition" in resource
        for key in (json.dumps(i, sort_keys=True) for i in _intrinsics(_replace_refs(resource, physical)))
        if key not in unconditional_keys
    }
    # And one output per condition of a kept resource, present only when the condition holds (`created`).
    for condition in sorted(set(conditions.values())):
        cfn["Outputs"][f"{_CONDITION_PREFIX}{condition}"] = {"Value": "true", "Condition": condition}
    for intrinsic in wanted:
        key = json.dumps(intrinsic, sort_keys=True)
        if key not in result.outputs_for:
            name = f"{_RESOLVE_PREFIX}{len(result.outputs_for)}"
            result.outputs_for[key] = name
            cfn["Outputs"][name] = {"Value": intrinsic} | ({"Condition": conditions[key]} if key in conditions else {})
    return result


def created(resource: dict[str, Any], outputs: dict[str, str]) -> bool:
    """Whether a resource `plan` kept out of moto is in the stack: it has no Condition, or its condition holds."""
    return "Condition" not in resource or f"{_CONDITION_PREFIX}{resource['Condition']}" in outputs


def resolve(part: Any, outputs: dict[str, str], result: Plan) -> Any:
    """`part` (taken out by `plan`) with its intrinsics replaced by the values moto resolved."""
    # An output whose condition is false is absent; only resources `created` leaves out name what it resolved.
    resolved = {key: outputs[name] for key, name in result.outputs_for.items() if name in outputs}
    return _substitute(_replace_refs(part, result.physical), resolved)


def names_of(logical_ids: list[str], outputs: dict[str, str], result: Plan) -> dict[str, str]:
    """Logical id -> `Fn::GetAtt <id>.Name` of each resource whose name `plan` asked moto for (event buses)."""
    return {
        logical_id: str(resolve({"Fn::GetAtt": [logical_id, "Name"]}, outputs, result))
        for logical_id in logical_ids
        if json.dumps({"Fn::GetAtt": [logical_id, "Name"]}, sort_keys=True) in result.outputs_for
    }


def rule_arn(rule: str, outputs: dict[str, str], result: Plan) -> str:
    return str(resolve({"Fn::GetAtt": [rule, "Arn"]}, outputs, result))


def load_and_translate(path: Path, parameters: dict[str, Any] | None = None) -> tuple[dict[str, Any], Translated]:
    template = load_template(path)
    return template, translate(template, path.parent, parameters)
