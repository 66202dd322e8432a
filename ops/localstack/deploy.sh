#!/usr/bin/env bash
# Build template.yaml with the Makefile's SAM CLI and deploy it to the running LocalStack through CloudFormation
# (`sam deploy --config-env localstack` from samconfig.toml); fail unless the stack and every resource completed,
# and list what LocalStack deployed only as a placeholder ("fallback").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

SAM=${SAM:-$ROOT/.tools/sam/bin/sam}
[[ -x $SAM ]] || { echo "deploy.sh: no SAM CLI at $SAM (make .tools/sam/bin/sam, or set SAM)" >&2; exit 1; }
export SAM_CLI_TELEMETRY=0
aws=("$LS_VENV/bin/aws" --endpoint-url "$LS_ENDPOINT" --output text)
mkdir -p "$LS_RUN"
cd "$ROOT"

elapsed() { echo "$(( ($(date +%s%N) - $1) / 1000000 )) ms"; }

started=$(date +%s%N)
build_log=$LS_RUN/sam-build.log
if ! "$SAM" build --template-file template.yaml --build-dir "$LS_HOME/build" --cache-dir "$LS_HOME/build-cache" \
  > "$build_log" 2>&1; then
  tail -30 "$build_log" >&2
  echo "deploy.sh: sam build failed (log: $build_log)" >&2
  exit 1
fi
echo "LocalStack: sam build into $LS_HOME/build in $(elapsed "$started")"

# The artifacts bucket samconfig.toml names (resolve_s3 would need a managed stack LocalStack does not have).
bucket=$(sed -n '/^\[localstack\.deploy\.parameters\]/,/^\[/s/^s3_bucket *= *"\(.*\)"/\1/p' samconfig.toml)
[[ -n $bucket ]] || { echo "deploy.sh: no s3_bucket in [localstack.deploy.parameters] of samconfig.toml" >&2; exit 1; }
"${aws[@]}" s3api head-bucket --bucket "$bucket" 2>/dev/null || "${aws[@]}" s3api create-bucket --bucket "$bucket" >/dev/null

started=$(date +%s%N)
deploy_log=$LS_RUN/sam-deploy.log
# botocore sends every call SAM CLI makes (S3, CloudFormation, ...) to AWS_ENDPOINT_URL: no samlocal needed.
if ! AWS_ENDPOINT_URL=$LS_ENDPOINT "$SAM" deploy --template-file "$LS_HOME/build/template.yaml" \
  --config-file "$ROOT/samconfig.toml" --config-env localstack --stack-name "$LS_STACK" \
  --no-fail-on-empty-changeset --no-progressbar > "$deploy_log" 2>&1; then
  grep -E 'FAILED|Error' "$deploy_log" | tail -30 >&2 || tail -30 "$deploy_log" >&2
  echo "deploy.sh: sam deploy failed (log: $deploy_log)" >&2
  exit 1
fi

# sam deploy has waited for the stack; this only confirms where it ended.
status=$("${aws[@]}" cloudformation describe-stacks --stack-name "$LS_STACK" --query 'Stacks[0].StackStatus')
resources=$("${aws[@]}" cloudformation describe-stack-resources --stack-name "$LS_STACK" \
  --query 'length(StackResources)')
incomplete=$("${aws[@]}" cloudformation describe-stack-resources --stack-name "$LS_STACK" \
  --query "StackResources[?!ends_with(ResourceStatus, '_COMPLETE')].[ResourceStatus, LogicalResourceId, ResourceStatusReason]")
if [[ $status != CREATE_COMPLETE && $status != UPDATE_COMPLETE ]] || [[ -n $incomplete ]]; then
  echo "deploy.sh: stack $LS_STACK is $status; resources not complete:" >&2
  echo "$incomplete" >&2
  exit 1
fi
echo "LocalStack: stack $LS_STACK $status, $resources resources, sam deploy in $(elapsed "$started")"
echo "LocalStack: deployed as placeholders (no resource provider in LocalStack's community build):"
"${aws[@]}" cloudformation describe-stack-resources --stack-name "$LS_STACK" \
  --query "StackResources[?contains(ResourceStatusReason || '', 'fallback')].[LogicalResourceId, ResourceType]" \
  | sed 's/^/  /'
