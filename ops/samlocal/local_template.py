"""Write the template `sam local` runs against a local data plane: the built template, plus two declared variables.

`sam local invoke/start-api/start-lambda --env-vars FILE` only overrides variables the template declares for a
function (samcli/local/lambdafn/env_vars.py: anything else in FILE is dropped without a word). template.yaml does
not declare AWS_ENDPOINT_URL (on AWS the SDK's default endpoints are right), so an env-vars file alone cannot point
the functions at moto or LocalStack. This writes `template.samlocal.yaml` next to the built template (its CodeUri
paths are relative to that directory) with these declared in Globals, so that FILE can set them:

    AWS_ENDPOINT_URL               "" here; the env-vars file gives the data plane (moto server, LocalStack)
    AWS_ACCOUNT_ID_ENDPOINT_MODE   "disabled": botocore >= 1.44 otherwise routes DynamoDB by account id

Credentials and region are not template variables: sam local passes them from its own credential chain (the
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_DEFAULT_REGION of the `sam` process, or --profile/--region).

    python ops/samlocal/local_template.py [.tools/samlocal/build]     # after sam build --build-dir ...
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

LOCAL_TEMPLATE = "template.samlocal.yaml"
DECLARED = {"AWS_ENDPOINT_URL": "", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}


def write_local_template(build_dir: Path) -> Path:
    built = build_dir / "template.yaml"
    # sam build writes the long form of every intrinsic (Fn::GetAtt, Ref), so plain YAML reads it.
    template: dict[str, Any] = yaml.safe_load(built.read_text())
    function = template.setdefault("Globals", {}).setdefault("Function", {})
    variables = function.setdefault("Environment", {}).setdefault("Variables", {})
    for name, default in DECLARED.items():
        variables.setdefault(name, default)
    target = build_dir / LOCAL_TEMPLATE
    header = f"# Written by ops/samlocal/local_template.py from {built.name}: for sam local only, never deployed.\n"
    target.write_text(header + yaml.safe_dump(template, sort_keys=False, width=120))
    return target


if __name__ == "__main__":
    print(write_local_template(Path(sys.argv[1] if len(sys.argv) > 1 else ".aws-sam/build")))
