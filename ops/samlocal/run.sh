#!/usr/bin/env bash
# `make sam-local`: the functions run by the real `sam local invoke` and `sam local start-api` in Docker, against a
# moto server that localcloud deploys template.yaml into. Every events/*.json fixture is asserted; then the HTTP API
# is driven and the pipeline converged (docs/localcloud.md, "sam local with Docker").
#
# 1. a Docker engine: the running one if `docker info` answers, otherwise dockerd started here (root; installed
#    with apt-get if missing) with a socket, data root and exec root under .tools/docker, its own bridge subnet
#    ($SAMLOCAL_BIP, default 172.31.240.1/24) and no iptables/masquerading: containers reach this host's bridge
#    address and each other, nothing else. Stopped again by PID at the end (also on failure or interrupt).
# 2. the base image public.ecr.aws/lambda/python:3.13-x86_64 (ops/samlocal/base-image.sh: pulled if possible,
#    otherwise built here once and kept in the engine);
# 3. sam build into .tools/samlocal/build;
# 4. ops/samlocal/drive.py: moto server on the bridge address, deploy, env-vars, the fixtures, start-api, pumps.
#
# Env: SAM, PYTHON (the Makefile passes them), SAMLOCAL_BIP, SAMLOCAL_PULL (1 pull / 0 never; default: try).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
SAM=${SAM:-$ROOT/.tools/sam/bin/sam}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
STATE=$ROOT/.tools/samlocal
DOCKER_STATE=$ROOT/.tools/docker
BIP=${SAMLOCAL_BIP:-172.31.240.1/24}
export PYENV_VERSION=${PYENV_VERSION:-3.13.0:3.12.1} SAM_CLI_TELEMETRY=0 AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled
mkdir -p "$STATE" "$DOCKER_STATE"
# runc refuses a container rootfs whose path goes through a symlink ("invalid rootfs: not an absolute path, or a
# symlink"), as it does when .tools is a link to another checkout's: the engine gets the physical path.
DOCKER_STATE=$(cd "$DOCKER_STATE" && pwd -P)

timings=()
step=
step_started=
run_started=$(date +%s%N)
dockerd_pid=
child_pid=

begin() {
  step=$1
  step_started=$(date +%s%N)
  echo "== sam-local: $step"
}

done_step() {
  local ms=$(( ($(date +%s%N) - step_started) / 1000000 ))
  timings+=("$(printf '%-28s %4d.%d s' "$step" $((ms / 1000)) $((ms % 1000 / 100)))")
  step=
}

# pid_alive PID: true while PID runs (a zombie does not count: PID 1 here may not reap the orphans it adopts).
pid_alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ $state != Z ]]
}

# in_background COMMAND...: run a step and wait for it, so that an interrupt reaches the trap at once.
in_background() {
  local rc=0
  "$@" &
  child_pid=$!
  wait "$child_pid" || rc=$?
  child_pid=
  return "$rc"
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $step ]] && echo "== sam-local: $step FAILED"
  if [[ -n $child_pid ]] && pid_alive "$child_pid"; then
    # The driver stops its own children (start-api, start-lambda, moto server) on SIGTERM.
    kill -TERM "$child_pid" 2>/dev/null || true
    for _ in $(seq 180); do pid_alive "$child_pid" || break; sleep 0.5; done
  fi
  if [[ -n $dockerd_pid ]]; then
    echo "== sam-local: stopping dockerd (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 60); do pid_alive "$dockerd_pid" || break; sleep 0.5; done
    if pid_alive "$dockerd_pid"; then kill -KILL "$dockerd_pid" 2>/dev/null || true; fi
    rm -f "$DOCKER_STATE/dockerd.pid"
  fi
  local ms=$(( ($(date +%s%N) - run_started) / 1000000 ))
  timings+=("$(printf '%-28s %4d.%d s' total $((ms / 1000)) $((ms % 1000 / 100)))")
  echo "== sam-local: timings"
  printf '   %s\n' "${timings[@]}"
  ((rc == 0)) && echo "== sam-local: OK" || echo "== sam-local: FAILED (logs: .tools/samlocal/logs)"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------------------ 1. engine
begin "docker engine"
if docker info >/dev/null 2>&1; then
  echo "   using the running engine (${DOCKER_HOST:-default socket})"
else
  if ! command -v dockerd >/dev/null; then
    ((EUID == 0)) || { echo "no Docker engine answers and dockerd is not installed (needs root: apt-get install docker.io)" >&2; exit 1; }
    # A fresh machine's package lists may be missing or stale: update them once if the install cannot find it.
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io; }
    } > "$STATE/apt.log" 2>&1 || { tail -20 "$STATE/apt.log" >&2; exit 1; }
  fi
  ((EUID == 0)) || { echo "no Docker engine answers; starting dockerd needs root" >&2; exit 1; }
  if [[ -s $DOCKER_STATE/dockerd.pid ]] && pid_alive "$(cat "$DOCKER_STATE/dockerd.pid")"; then
    echo "a dockerd of an earlier run still runs (pid $(cat "$DOCKER_STATE/dockerd.pid")); stop it first" >&2
    exit 1
  fi
  export DOCKER_HOST=unix://$DOCKER_STATE/docker.sock
  dockerd --iptables=false --ip-masq=false --bip "$BIP" --storage-driver overlay2 \
    --data-root "$DOCKER_STATE/data" --exec-root "$DOCKER_STATE/run" --pidfile "$DOCKER_STATE/dockerd.pid" \
    -H "$DOCKER_HOST" > "$DOCKER_STATE/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    pid_alive "$dockerd_pid" || { tail -20 "$DOCKER_STATE/dockerd.log" >&2; exit 1; }
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not answer within 60 s" >&2; tail -20 "$DOCKER_STATE/dockerd.log" >&2; exit 1; }
  echo "   started dockerd (pid $dockerd_pid, $DOCKER_HOST, bridge $BIP, no iptables)"
  # Containers a killed run left behind (the engine is ours alone).
  stale=$(docker ps -aq --filter label=sam.cli.container.type=lambda)
  [[ -z $stale ]] || docker rm -f $stale >/dev/null
fi
# The address containers reach this host at: the default bridge's gateway.
BRIDGE_IP=$(docker network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}')
[[ -n $BRIDGE_IP ]] || { echo "the engine's bridge network has no gateway address" >&2; exit 1; }
done_step

# ------------------------------------------------------------------------------------------------ 2. base image
begin "base image"
in_background bash "$ROOT/ops/samlocal/base-image.sh"
done_step

# ------------------------------------------------------------------------------------------------ 3. sam build
begin "sam build"
in_background "$SAM" build --build-dir "$STATE/build" --cache-dir "$STATE/build-cache" --cached --parallel \
  > "$STATE/sam-build.log" 2>&1 || { tail -30 "$STATE/sam-build.log" >&2; exit 1; }
done_step

# ------------------------------------------------------------------------------------------------ 4. drive
begin "drive (deploy, invokes, api)"
in_background "$PYTHON" "$ROOT/ops/samlocal/drive.py" --bridge "$BRIDGE_IP" --sam "$SAM" --build-dir "$STATE/build"
done_step
