"""Write a `sam local --env-vars` file from a deployed stack: AWS, LocalStack or a moto server.

For each AWS::Lambda::Function of the stack, its environment as deployed (GetFunctionConfiguration: the physical
table, queue and bus names the template's Ref/GetAtt resolved to), keyed by logical id, which is how sam local
matches them. With --container-endpoint, "Parameters" (applied to every function) also sets AWS_ENDPOINT_URL: the
data plane as the function containers reach it (a bridge address or host.docker.internal, never 127.0.0.1, which
is the container itself). That variable takes effect only with the template ops/samlocal/local_template.py writes:
sam local drops variables a template does not declare.

    python ops/samlocal/env_vars.py --stack converge --out env.json                       # a stack on AWS
    python ops/samlocal/env_vars.py --stack converge-local --endpoint http://127.0.0.1:4566 \\
        --container-endpoint http://172.17.0.1:4566 --out .tools/samlocal/env-vars.json  # LocalStack
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config


def env_vars_from_stack(
    stack: str, endpoint: str | None = None, container_endpoint: str | None = None
) -> dict[str, Any]:
    config = Config(account_id_endpoint_mode="disabled") if endpoint else None
    cloudformation = boto3.client("cloudformation", endpoint_url=endpoint, config=config)
    lambda_ = boto3.client("lambda", endpoint_url=endpoint, config=config)
    env_vars: dict[str, Any] = {}
    if container_endpoint:
        env_vars["Parameters"] = {"AWS_ENDPOINT_URL": container_endpoint, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}
    pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
    for page in pages:
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] != "AWS::Lambda::Function":
                continue
            configuration = lambda_.get_function_configuration(FunctionName=resource["PhysicalResourceId"])
            variables = configuration.get("Environment", {}).get("Variables", {})
            # Strings, as Lambda's API returns them: moto keeps a Number parameter's Ref (SweepSegments) as an int.
            env_vars[resource["LogicalResourceId"]] = {name: str(value) for name, value in variables.items()}
    if not set(env_vars) - {"Parameters"}:
        raise SystemExit(f"stack {stack} has no AWS::Lambda::Function")
    return dict(sorted(env_vars.items()))


def write(path: Path, env_vars: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(env_vars, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--endpoint", help="where this script reaches CloudFormation and Lambda (default: AWS)")
    parser.add_argument("--container-endpoint", help="AWS_ENDPOINT_URL for the functions (default: none, AWS)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(write(args.out, env_vars_from_stack(args.stack, args.endpoint, args.container_endpoint)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
