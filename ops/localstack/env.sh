# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this file
# Paths and settings shared by the ops/localstack scripts (sourced, not run).
OPS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$OPS/../.." && pwd)
# Everything installed or written at run time lives here (.tools/ is git-ignored).
LS_HOME=${LS_HOME:-$ROOT/.tools/localstack}
LS_VENV=$LS_HOME/venv            # localstack-core and the ls_host_lambda executor (Python 3.13)
LS_RUNTIME=$LS_HOME/python3.13   # the functions' interpreter: boto3 only, like AWS's python3.13 image
LS_FS=$LS_HOME/fs                # LocalStack's FILESYSTEM_ROOT: pre-placed libs, state, unzipped functions
LS_LIBS=$LS_FS/var/lib/localstack/lib
LS_RUN=$LS_HOME/run              # PID file, logs, RSS samples of the current run
LS_PIDFILE=$LS_RUN/localstack.pid
LS_LOG=$LS_RUN/localstack.log
LS_PORT=${LOCALSTACK_PORT:-4566}
LS_ENDPOINT=http://127.0.0.1:$LS_PORT
LS_STACK=${AWS_SAM_STACK_NAME:-converge-local}   # samconfig.toml's localstack environment
# sam build needs python3.13; pyenv hosts resolve it with this (as the Makefile does).
export PYENV_VERSION=${PYENV_VERSION:-3.13.0:3.12.1}
# LocalStack accepts any credentials; the scripts' AWS calls must never reach a real account.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

# pid_alive PID: true while PID runs. `kill -0` is also true for a zombie, and here PID 1 does not reap the
# orphans it adopts, so read the state from /proc instead.
pid_alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ $state != Z ]]
}

# descendants PID: every process below PID, one per line (children before their own children).
descendants() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      found[root] = 1
      do { grew = 0; for (i in pids) { p = pids[i]; if (!(p in found) && (parent[p] in found)) { found[p] = 1; print p; grew = 1 } } } while (grew)
    }'
}
