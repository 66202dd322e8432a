#!/usr/bin/env bash
# Start LocalStack on 127.0.0.1:$LOCALSTACK_PORT (default 4566) as a host process and wait until it answers.
# Writes its PID to .tools/localstack/run/localstack.pid (stop.sh reads it) and its log next to it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

[[ -x $LS_VENV/bin/python ]] || { echo "start.sh: not installed; run ops/localstack/install.sh" >&2; exit 1; }
if [[ -f $LS_PIDFILE ]] && pid_alive "$(<"$LS_PIDFILE")"; then
  echo "start.sh: LocalStack already runs here (pid $(<"$LS_PIDFILE")); ops/localstack/stop.sh stops it" >&2
  exit 1
fi
# Someone else's LocalStack (another checkout, another engineer) must not receive this deployment.
if curl -s -o /dev/null --max-time 2 "$LS_ENDPOINT/_localstack/health"; then
  echo "start.sh: port $LS_PORT is taken by another process; set LOCALSTACK_PORT to another port" >&2
  exit 1
fi
mkdir -p "$LS_RUN"
rm -rf "$LS_RUN/lambda" "$LS_FS/tmp-lambda"   # a fresh run: no logs nor unzipped functions of earlier runs
mkdir -p "$LS_FS/tmp-lambda"

export FILESYSTEM_ROOT=$LS_FS
export OVERRIDE_IN_DOCKER=0 GATEWAY_SERVER=hypercorn GATEWAY_LISTEN=127.0.0.1:$LS_PORT
export LOCALSTACK_HOST=localhost.localstack.cloud:$LS_PORT
export DNS_ADDRESS=0                                    # no DNS server (it would bind port 53)
export SKIP_SSL_CERT_DOWNLOAD=1                         # no certificate from localstack.cloud
export DISABLE_EVENTS=1 LOCALSTACK_TELEMETRY_DISABLED=1 # no analytics
export DEBUG=1                                          # run.sh checks the log for installer runs
# Streams served from DynamoDB Local itself: no kinesis-mock process (~150 MB), and v1 lost the first record
# written while kinesis-mock was still starting.
export PROVIDER_OVERRIDE_DYNAMODBSTREAMS=v2
# An empty inbox is polled again within 1 s instead of 10 s: each SQS hop cost 4-8 s of the e2e's waiting.
export LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC=1
export LAMBDA_RUNTIME_EXECUTOR=host                     # ls_host_lambda: functions run as host processes
export LAMBDA_HOST_PYTHON_3_13=$LS_RUNTIME/bin/python
export LAMBDA_HOST_LOG_DIR=$LS_RUN/lambda
# LocalStack unzips every function version under $TMPDIR/lambda (~30 MB a deployment): keep it in .tools.
export TMPDIR=$LS_FS/tmp-lambda

started=$(date +%s%N)
"$LS_VENV/bin/python" -m localstack.runtime.main > "$LS_LOG" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$LS_PIDFILE"
for _ in $(seq 1 1200); do
  if curl -sf -o /dev/null --max-time 2 "$LS_ENDPOINT/_localstack/health"; then
    echo "LocalStack: ready on $LS_ENDPOINT after $(( ($(date +%s%N) - started) / 1000000 )) ms, pid $pid, log $LS_LOG"
    exit 0
  fi
  if ! pid_alive "$pid"; then
    echo "start.sh: LocalStack exited during start; last lines of $LS_LOG:" >&2
    tail -30 "$LS_LOG" >&2
    exit 1
  fi
  sleep 0.1
done
echo "start.sh: LocalStack not ready after 120 s (pid $pid, log $LS_LOG)" >&2
exit 1
