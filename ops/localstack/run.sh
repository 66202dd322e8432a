#!/usr/bin/env bash
# `make test-localstack`: install LocalStack if needed, start it, deploy template.yaml, run tests/e2e against it,
# and always stop it again (a failing step or an interrupt included). Prints each step's time and the peak RSS of
# LocalStack, DynamoDB Local and the function processes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
RSS_FILE=$LS_RUN/rss-peak
timings=()
sampler=
step=
step_started=
step_pid=

begin() {
  step=$1
  step_started=$(date +%s%N)
  echo "== test-localstack: $step"
}

done_step() {
  local ms=$(( ($(date +%s%N) - step_started) / 1000000 ))
  timings+=("$(printf '%-8s %4d.%d s' "$step" $((ms / 1000)) $((ms % 1000 / 100)))")
  step=
}

# in_background COMMAND...: run a step's command and wait for it. A trap runs only once the foreground command has
# finished (and SAM CLI can hang on an interrupt), while `wait` returns at once: an interrupt stops the run now.
in_background() {
  "$@" &
  step_pid=$!
  wait "$step_pid"
  step_pid=
}

# sample_rss PID: twice a second, RSS of LocalStack (PID), DynamoDB Local (java) and the functions (python
# children); writes the peaks (kB) and the most function processes seen at once to $RSS_FILE.
sample_rss() {
  local root=$1 ls ddb fn count p_ls=0 p_ddb=0 p_fn=0 p_total=0 p_count=0
  while pid_alive "$root"; do
    read -r ls ddb fn count < <(ps -e -o pid=,ppid=,rss=,comm= | awk -v root="$root" '
      { parent[$1] = $2; rss[$1] = $3; comm[$1] = $4 }
      END {
        tree[root] = 1
        do { grew = 0; for (p in parent) if (!(p in tree) && (parent[p] in tree)) { tree[p] = 1; grew = 1 } } while (grew)
        for (p in tree) {
          if (p == root) ls += rss[p]; else if (comm[p] == "java") ddb += rss[p]; else if (comm[p] ~ /^python/) { fn += rss[p]; n++ }
        }
        print ls + 0, ddb + 0, fn + 0, n + 0
      }')
    ((ls > p_ls)) && p_ls=$ls
    ((ddb > p_ddb)) && p_ddb=$ddb
    ((fn > p_fn)) && p_fn=$fn
    ((count > p_count)) && p_count=$count
    ((ls + ddb + fn > p_total)) && p_total=$((ls + ddb + fn))
    echo "$p_ls $p_ddb $p_fn $p_count $p_total" > "$RSS_FILE"
    sleep 0.5
  done
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $step ]] && echo "== test-localstack: $step FAILED"
  if [[ -n $step_pid ]]; then
    local tree
    mapfile -t tree < <(descendants "$step_pid")
    kill -TERM "$step_pid" "${tree[@]}" 2>/dev/null || true
  fi
  if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null || true; fi
  "$OPS/stop.sh" || rc=1
  if ((${#timings[@]})); then
    echo "== test-localstack: timings"
    printf '   %s\n' "${timings[@]}"
  fi
  if [[ -s $RSS_FILE ]]; then
    local p_ls p_ddb p_fn p_count p_total
    read -r p_ls p_ddb p_fn p_count p_total < "$RSS_FILE"
    echo "== test-localstack: peak RSS (sampled every 0.5 s)"
    printf '   %-34s %5d MB\n' "LocalStack (python)" $((p_ls / 1024)) "DynamoDB Local (java)" $((p_ddb / 1024)) \
      "functions ($p_count processes at most)" $((p_fn / 1024)) "all together (at the same moment)" $((p_total / 1024))
  fi
  echo "== test-localstack: $([[ $rc == 0 ]] && echo passed || echo "FAILED (exit $rc)")"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

begin install
in_background "$OPS/install.sh"
# The executor plugin, type-checked (strict) against the LocalStack it runs in.
in_background env MYPYPATH="$OPS/ls_host_lambda" "$ROOT/.venv/bin/mypy" --python-version 3.13 \
  --python-executable "$LS_VENV/bin/python" \
  "$OPS/ls_host_lambda/ls_host_lambda"
done_step

begin start
rm -f "$RSS_FILE"
in_background "$OPS/start.sh"
sample_rss "$(<"$LS_PIDFILE")" &
sampler=$!
done_step

begin deploy
in_background "$OPS/deploy.sh"
done_step

begin tests
in_background env CONVERGE_E2E_TARGET=localstack LOCALSTACK_ENDPOINT="$LS_ENDPOINT" AWS_SAM_STACK_NAME="$LS_STACK" \
  "$PYTHON" -m pytest -q -p no:cacheprovider "$ROOT/tests/e2e"
# Proof that nothing came from outside PyPI and npm: LocalStack logs every installer it runs.
if grep -n "Starting installation of" "$LS_LOG"; then
  echo "LocalStack ran an installer (a download): place the package in ops/localstack/place-libs.sh" >&2
  exit 1
fi
done_step
