#!/usr/bin/env bash
# Ensure the image `sam local` builds its emulation image FROM: public.ecr.aws/lambda/python:3.13-x86_64.
#
# - present already (a pulled one, or one built here earlier): nothing to do;
# - the registry is reachable (SAMLOCAL_PULL=1, or a `docker pull` that succeeds): AWS's real image;
# - otherwise (no image can be pulled, e.g. the CI machines): a Lambda-style image built here, from Debian trixie's
#   python3.13 (debootstrap) and the wheels of awslambdaric, boto3 and botocore, laid out as AWS's base image is:
#     /var/task (LAMBDA_TASK_ROOT, the code), /opt (layers), /var/runtime (the runtime interface client, the SDK and
#     `bootstrap`), /var/lang/bin/python3.13, /lambda-entrypoint.sh (the ENTRYPOINT, as in AWS's image).
#   SAM CLI adds its runtime interface emulator (samcli/local/rapid/aws-lambda-rie-x86_64) as /var/rapid/aws-lambda-rie
#   and makes it the entrypoint for Zip functions; the emulator starts /var/runtime/bootstrap, which runs
#   `python3.13 -m awslambdaric $_HANDLER`. The imitation is close, not identical: glibc/OpenSSL of Debian, not of
#   Amazon Linux 2023, and the SDK versions pinned below rather than AWS's.
#
# Env: DOCKER_HOST (the engine), SAMLOCAL_PULL (1: pull, 0: never try), PIP (a pip to download wheels with).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE=public.ecr.aws/lambda/python:3.13-x86_64
WORK=${SAMLOCAL_IMAGE_WORK:-$ROOT/.tools/samlocal/base-image}
PIP=${PIP:-$ROOT/.venv/bin/pip}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The SDK the project's tests run against moto (requirements-dev.txt resolves these); awslambdaric 4.2.2 has a
# cp313 manylinux wheel.
PY_SDK=$("$ROOT/.venv/bin/python" -c 'import boto3, botocore; print(f"boto3=={boto3.__version__} botocore=={botocore.__version__}")')
WHEELS=(awslambdaric==4.2.2 simplejson $PY_SDK)

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image: $IMAGE present"
  exit 0
fi

if [[ ${SAMLOCAL_PULL:-} != 0 ]]; then
  # A quick attempt: on a machine without a route to the registry this fails within seconds.
  if timeout "${SAMLOCAL_PULL_TIMEOUT:-20}" docker pull --quiet "$IMAGE" >/dev/null 2>&1; then
    echo "base image: pulled AWS's $IMAGE"
    exit 0
  fi
  if [[ ${SAMLOCAL_PULL:-} == 1 ]]; then
    echo "base image: docker pull $IMAGE failed (SAMLOCAL_PULL=1)" >&2
    exit 1
  fi
  echo "base image: cannot pull $IMAGE; building a Lambda-style one (debootstrap, about 2 minutes)"
fi

if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap; }
fi
rm -rf "$WORK"
mkdir -p "$WORK"
ROOTFS=$WORK/rootfs
debootstrap --variant=minbase --include=python3.13,ca-certificates trixie "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 ||
  { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }

# The runtime interface client and the SDK, unpacked into /var/runtime as in AWS's image.
"$PIP" download --quiet --dest "$WORK/wheels" --only-binary=:all: --python-version 3.13 --implementation cp \
  --abi cp313 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  "${WHEELS[@]}"
mkdir -p "$ROOTFS/var/runtime" "$ROOTFS/var/task" "$ROOTFS/opt" "$ROOTFS/var/lang/bin"
for wheel in "$WORK"/wheels/*.whl; do
  "$ROOT/.venv/bin/python" -m zipfile -e "$wheel" "$ROOTFS/var/runtime"
done
ln -sf /usr/bin/python3.13 "$ROOTFS/var/lang/bin/python3.13"
ln -sf python3.13 "$ROOTFS/var/lang/bin/python3"
ln -sf python3.13 "$ROOTFS/var/lang/bin/python"

cat > "$ROOTFS/var/runtime/bootstrap" <<'EOF'
#!/bin/sh
# Started by the runtime interface emulator (AWS_LAMBDA_RUNTIME_API is set): the Python runtime interface client.
export AWS_EXECUTION_ENV=${AWS_EXECUTION_ENV:-AWS_Lambda_python3.13}
export PYTHONPATH=/var/runtime:/var/task:/opt/python${PYTHONPATH:+:$PYTHONPATH}
cd "${LAMBDA_TASK_ROOT:-/var/task}"
exec /var/lang/bin/python3.13 -m awslambdaric "${_HANDLER:-${AWS_LAMBDA_FUNCTION_HANDLER:-$1}}"
EOF
# AWS's entrypoint: the emulator when run outside Lambda, the bootstrap inside it.
cat > "$ROOTFS/lambda-entrypoint.sh" <<'EOF'
#!/bin/sh
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ] && [ -x /usr/local/bin/aws-lambda-rie ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
EOF
chmod 755 "$ROOTFS/var/runtime/bootstrap" "$ROOTFS/lambda-entrypoint.sh"
# Lambda's image carries no apt caches or docs; neither need this one.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc \
  "$ROOTFS"/usr/share/man "$ROOTFS"/usr/share/locale

tar -C "$ROOTFS" -c . | docker import \
  --change 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
  --change 'WORKDIR /var/task' \
  --change 'ENV LANG=en_US.UTF-8' \
  --change 'ENV TZ=:/etc/localtime' \
  --change 'ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin' \
  --change 'ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib' \
  --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
  --change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
  --message "Lambda-style python3.13 (Debian trixie + awslambdaric), built by ops/samlocal/base-image.sh" \
  - "$IMAGE" >/dev/null
rm -rf "$WORK"
echo "base image: built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
