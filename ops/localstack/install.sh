#!/usr/bin/env bash
# Install LocalStack for this Docker-less host into .tools/localstack. Idempotent: does nothing when the inputs
# (this directory's recipe files) are what the last successful install used. Fetches from PyPI and npm only;
# Java is the system JDK (javac compiles the two helpers in java/).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

STAMP=$LS_HOME/.installed
fingerprint=$(cd "$OPS" && cat install.sh place-libs.sh env.sh requirements.txt constraints.txt runtime-requirements.txt \
  java/*.java ls_host_lambda/pyproject.toml ls_host_lambda/ls_host_lambda/*.py | sha256sum | cut -d' ' -f1)
if [[ -f $STAMP && $(<"$STAMP") == "$fingerprint" ]]; then
  echo "LocalStack: installed in $LS_HOME"
  exit 0
fi
rm -f "$STAMP"
mkdir -p "$LS_HOME"

PYTHON313=${PYTHON313:-python3.13}
"$PYTHON313" -c 'import sys; assert sys.version_info[:2] == (3, 13), sys.version' \
  || { echo "install.sh: needs Python 3.13 as $PYTHON313 (set PYTHON313)" >&2; exit 1; }
pip_quiet=(--quiet --disable-pip-version-check --no-input)

echo "LocalStack: venv (localstack-core, PyPI)"
[[ -x $LS_VENV/bin/python ]] || "$PYTHON313" -m venv "$LS_VENV"
"$LS_VENV/bin/pip" install "${pip_quiet[@]}" -r "$OPS/requirements.txt"

echo "LocalStack: ls_host_lambda executor"
# Built from a copy: building in the source tree would leave build/ and *.egg-info in the repository.
rm -rf "$LS_HOME/src"
mkdir -p "$LS_HOME/src"
cp -r "$OPS/ls_host_lambda" "$LS_HOME/src/"
rm -rf "$LS_HOME/src/ls_host_lambda/ls_host_lambda/__pycache__"
"$LS_VENV/bin/pip" install "${pip_quiet[@]}" --no-deps --no-build-isolation --force-reinstall "$LS_HOME/src/ls_host_lambda"

# What LocalStack's Docker image does at build time: index every service spec once. Otherwise the first start
# after an install builds it, and that run's LocalStack peaks at ~680 MB instead of ~330 MB.
echo "LocalStack: service catalog index"
mkdir -p "$LS_FS/usr/lib/localstack"
rm -f "$LS_FS"/usr/lib/localstack/service-catalog-*.dill
FILESYSTEM_ROOT=$LS_FS OVERRIDE_IN_DOCKER=0 "$LS_VENV/bin/python" -m localstack.aws.spec

echo "LocalStack: function runtime python3.13 (boto3, PyPI)"
[[ -x $LS_RUNTIME/bin/python ]] || "$PYTHON313" -m venv "$LS_RUNTIME"
"$LS_RUNTIME/bin/pip" install "${pip_quiet[@]}" -r "$OPS/runtime-requirements.txt"

"$OPS/place-libs.sh"
echo "$fingerprint" > "$STAMP"
echo "LocalStack: installed in $LS_HOME ($(du -sh "$LS_HOME" | cut -f1))"
