#!/usr/bin/env bash
# Stop the LocalStack that start.sh started, by its PID, with everything it started (DynamoDB Local, functions).
# SIGTERM first: LocalStack's shutdown hooks take ~3 s. It does not always stop DynamoDB Local, and then waits on
# it at exit, so after 5 s the remaining processes get SIGTERM too, and whatever is left after 10 s gets SIGKILL.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

pid=$(cat "$LS_PIDFILE" 2>/dev/null) || { echo "LocalStack: not running (no $LS_PIDFILE)"; exit 0; }
if ! pid_alive "$pid"; then
  echo "LocalStack: not running (pid $pid has exited)"
  rm -f "$LS_PIDFILE"
  exit 0
fi
started=$(date +%s%N)
# Taken before the signal: once LocalStack exits, its children are re-parented and cannot be found from it.
mapfile -t tree < <(descendants "$pid")

kill -TERM "$pid"
for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
for child in "${tree[@]}"; do pid_alive "$child" && kill -TERM "$child" 2>/dev/null; done
for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
left=()
for p in "$pid" "${tree[@]}"; do pid_alive "$p" && left+=("$p"); done
if ((${#left[@]})); then
  echo "LocalStack: SIGKILL to ${left[*]}"
  kill -KILL "${left[@]}" 2>/dev/null
  sleep 0.2
fi
for p in "$pid" "${tree[@]}"; do
  if pid_alive "$p"; then echo "stop.sh: process $p survived SIGKILL" >&2; exit 1; fi
done
rm -f "$LS_PIDFILE"
echo "LocalStack: stopped pid $pid and ${#tree[@]} child processes in $(( ($(date +%s%N) - started) / 1000000 )) ms"
