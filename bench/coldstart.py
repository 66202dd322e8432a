"""Cold init of every function in template.yaml, as a ratio to a bare `python -c "import boto3"`.

Each run is a fresh interpreter (`python -c`) that, like Lambda's init phase, puts the function's CodeUri and
the layer on sys.path, sets the environment the template gives the function (resources replaced by fake
names), imports the handler module and builds what the first invocation needs: the cached settings and the
AWS clients the function calls. The baseline runs in the same loop, interleaved with the functions, so a
noisy neighbour slows both. `python -X importtime` then shows where each function's import time goes, each
module's own time attributed to the nearest third-party package (or the function's code) that imported it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converge.contracts import function_kinds
from localcloud.template import ROOT, function_specs, load_template

LAYER_DIR = ROOT / "layers" / "common" / "python"

# What each kind of entry point's first invocation needs besides its imports: the AWS clients it calls. The kind
# of each template function comes from the service contracts; a function no contract declares fails the smoke test.
CLIENTS: dict[str, tuple[str, ...]] = {
    "api": ("dynamodb",),
    "consumer": ("dynamodb",),
    "publisher": ("events",),
    "scheduled": ("dynamodb", "sqs", "events"),
    "sweep": ("dynamodb", "events"),  # the state machine's worker: pages by Scan and BatchGetItem, repairs on the bus
}

FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
}

BASELINE = "import boto3"

# Packages whose import time is reported as one group (a module's own time goes to the nearest of these up
# its import chain, so the stdlib modules pydantic pulls in count as pydantic).
GROUPS = {
    "boto3": "AWS SDK",
    "botocore": "AWS SDK",
    "s3transfer": "AWS SDK",
    "urllib3": "AWS SDK",
    "jmespath": "AWS SDK",
    "dateutil": "AWS SDK",
    "six": "AWS SDK",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "annotated_types": "pydantic",
    "typing_inspection": "pydantic",
    "typing_extensions": "pydantic",
    "aws_lambda_powertools": "Powertools",
    "jsonpath_ng": "Powertools",
    "converge": "converge layer",
}


@dataclass(frozen=True)
class Target:
    """One function (or the baseline) to start cold."""

    name: str
    code: str
    environment: dict[str, str] = field(default_factory=dict)
    own_modules: frozenset[str] = frozenset()


def _fake(value: Any, template: dict[str, Any]) -> str:
    """Resolve an environment value of the template to a plausible fake (init reads names, calls nothing)."""
    if not isinstance(value, dict):
        return str(value)
    if "Ref" in value:
        ref = str(value["Ref"])
        parameter = template.get("Parameters", {}).get(ref)
        if parameter is not None:
            return str(parameter.get("Default", ref))
        kind = template.get("Resources", {}).get(ref, {}).get("Type", "")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.us-east-1.amazonaws.com/123456789012/bench-{ref}"
        return f"bench-{ref}"
    if "Fn::GetAtt" in value:
        target, attribute = value["Fn::GetAtt"]
        return f"bench-{target}-{attribute}"
    if "Fn::If" in value:
        # Conditions of this template switch optional features on (tracing, a KMS key): defaults are off.
        _condition, _when_true, when_false = value["Fn::If"]
        return _fake(when_false, template)
    if "Fn::Sub" in value:
        return str(value["Fn::Sub"]).replace("${AWS::StackName}", "bench").replace("${AWS::Region}", "us-east-1")
    raise ValueError(f"cannot fake environment value {value!r}")


def init_code(code_dir: Path, module: str, clients: tuple[str, ...]) -> str:
    """The init phase as a `python -c` program; prints its own phase timings as JSON."""
    calls = "".join(f"aws.{c}();" for c in clients)
    if "dynamodb" in clients:
        # Its first call (de)serialises items: the codec (boto3's TypeSerializer) is built here, not deferred.
        calls += "from converge.dynamo import to_item;to_item({});"
    return (
        "import time;t0=time.perf_counter();import sys;"
        f"sys.path[:0]=[{str(code_dir)!r},{str(LAYER_DIR)!r}];"
        f"import {module};t1=time.perf_counter();"
        "from converge import aws;from converge.settings import settings;settings();"
        f"{calls}t2=time.perf_counter();"
        "import json;print(json.dumps({'import':t1-t0,'clients':t2-t1,'modules':len(sys.modules)}))"
    )


def targets(template: dict[str, Any] | None = None) -> list[Target]:
    """Every function of the template, with its fake environment and its init program."""
    template = template or load_template()
    found = []
    kinds = function_kinds()
    for logical_id, spec in sorted(function_specs(template).items()):
        if logical_id not in kinds:
            raise KeyError(f"{logical_id}: no service contract declares it (converge.contracts)")
        clients = CLIENTS[kinds[logical_id][1]]
        environment = {k: _fake(v, template) for k, v in spec.environment.items()}
        environment["AWS_LAMBDA_FUNCTION_NAME"] = logical_id
        # The service's package (and anything else at the top of its CodeUri) is the function's own code.
        own = frozenset(p.stem for p in spec.code_dir.glob("*.py")) | {
            p.name for p in spec.code_dir.iterdir() if p.is_dir()
        }
        found.append(Target(logical_id, init_code(spec.code_dir, spec.module, clients), environment, own))
    return found


def _environment(target: Target) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SYSTEMROOT") if k in os.environ}
    return {**env, **FAKE_ENVIRONMENT, **target.environment}


def run_once(target: Target, python: str = sys.executable) -> tuple[float, dict[str, float]]:
    """Wall time of one cold start (interpreter start to exit), and the phases the program timed itself."""
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-c", target.code], env=_environment(target), capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{target.name} failed to start:\n{done.stderr[-2000:]}")
    phases = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    return wall, phases


def importtime_groups(target: Target, python: str = sys.executable) -> dict[str, float]:
    """Milliseconds of import time per group (see `_attribute_up`)."""
    return _attribute_up(_importtime_stderr(target, python), target)


def _attribute_up(stderr: str, target: Target) -> dict[str, float]:
    """Attribute each module's own time to the nearest grouped module at or above it in the import tree."""
    rows: list[tuple[int, str, float]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        own = int(parts[0].strip()) / 1000
        name = parts[2].rstrip("\n")
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((depth, name.strip(), own))

    def group_of(module: str) -> str | None:
        top = module.split(".")[0]
        return GROUPS.get(top) or ("function code" if top in target.own_modules else None)

    # importtime prints a module after the modules it imported (post-order): walk it backwards so that
    # each module's parent (the nearest shallower row above it in reverse order) is seen first.
    totals: dict[str, float] = {}
    stack: list[tuple[int, str | None]] = []  # (depth, effective group) of the open ancestors
    for depth, module, own in reversed(rows):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        inherited = next((g for _, g in reversed(stack) if g), None)
        group = group_of(module) or inherited
        stack.append((depth, group))
        key = group or "interpreter/stdlib"
        totals[key] = totals.get(key, 0.0) + own
    return {k: round(v, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def measure(runs: int = 7, profile: bool = True, only: list[str] | None = None) -> dict[str, Any]:
    """Median cold init per function and its ratio to the boto3 baseline, runs interleaved round by round."""
    functions = [t for t in targets() if not only or t.name in only]
    baseline = Target("import boto3", BASELINE)
    everything = [baseline, *functions]
    for target in everything:  # warm-up: fills the OS page cache and __pycache__, not counted
        run_once(target)
    walls: dict[str, list[float]] = {t.name: [] for t in everything}
    phases: dict[str, list[dict[str, float]]] = {t.name: [] for t in everything}
    for round_ in range(runs):
        # Alternate the order each round so neither the baseline nor a function always runs first.
        order = everything if round_ % 2 == 0 else list(reversed(everything))
        for target in order:
            wall, phase = run_once(target)
            walls[target.name].append(wall)
            phases[target.name].append(phase)
    base = statistics.median(walls[baseline.name])
    rows: list[dict[str, Any]] = []
    for target in functions:
        median = statistics.median(walls[target.name])
        rows.append(
            {
                "function": target.name,
                "median_ms": round(median * 1000, 1),
                "ratio": round(median / base, 2),
                "import_ms": round(statistics.median(p["import"] for p in phases[target.name]) * 1000, 1),
                "clients_ms": round(statistics.median(p["clients"] for p in phases[target.name]) * 1000, 1),
                "modules": int(statistics.median(p["modules"] for p in phases[target.name])),
            }
        )
    result: dict[str, Any] = {
        "runs": runs,
        "baseline": {"code": BASELINE, "median_ms": round(base * 1000, 1)},
        "functions": rows,
        "goal": 1.2,
        "worst_ratio": max((float(r["ratio"]) for r in rows), default=0.0),
    }
    if profile:
        base_groups = importtime_groups(baseline)
        result["profile"] = {
            "baseline": base_groups,
            "functions": {t.name: importtime_groups(t) for t in functions},
        }
    return result


def _importtime_stderr(target: Target, python: str = sys.executable) -> str:
    done = subprocess.run(
        [python, "-X", "importtime", "-c", target.code],
        env=_environment(target),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stderr
