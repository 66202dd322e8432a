# Converge - every target sets itself up: a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.10
# SAM CLI and checkov live in venvs of their own: their pins conflict with the project's.
TOOLS := .tools
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
SAM_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
# The AsyncAPI parser (version pinned by tools/asyncapi-check/package-lock.json), installed by npm ci into its
# git-ignored node_modules; node and npm come from Debian when the machine has none.
ASYNCAPI_CHECK := tools/asyncapi-check
ASYNCAPI_PARSER := $(ASYNCAPI_CHECK)/node_modules/.installed
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
# sam build needs python3.13 on PATH; pyenv shims alone fail, this makes them resolve (see docs/deploy.md).
PYENV_VERSION ?= 3.13.0:3.12.1
export PYENV_VERSION
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: help venv demo test lint typecheck template-check unit integration schemas build deploy deploy-localstack invoke serve clean \
	test-localstack reconcile-cost rebuild rebuild-local deploydoc chaos bench bench-quick sam-local openapi asyncapi asyncapi-check browser schema-check

help:
	@echo "make demo      run the whole system locally (localcloud on moto): no Docker, no AWS account"
	@echo "make test      lint, type-check, template checks and every test"
	@echo "make lint      ruff;  make typecheck  mypy;  make schemas  regenerate events/schemas"
	@echo "make schema-check  the compatibility gate: every model against its released contract (docs/events.md)"
	@echo "make build     sam build (needs SAM CLI and python3.13);  make deploy  sam deploy"
	@echo "make bench     benchmarks, written to docs/BENCHMARKS.md;  make bench-quick  smaller, to out/BENCHMARKS.md"
	@echo "make chaos     faults injected, then convergence measured (docs/RELIABILITY.md)"
	@echo "make test-localstack  deploy template.yaml to LocalStack on 127.0.0.1 and run tests/e2e against it"
	@echo "make sam-local  the real sam local invoke/start-api in Docker against a moto server: every fixture asserted"
	@echo "make unit      tests/unit (no AWS);  make integration  tests/integration (handlers under moto)"
	@echo "make invoke FUNCTION=F EVENT=events/F.case.json  one event in-process (EVENT=- stdin; ENV_VARS=env.json,"
	@echo "               PARAMETER_OVERRIDES=\"Key=Value ...\" as sam local invoke takes them);  make serve  HTTP API on :3000"
	@echo "make openapi   regenerate docs/openapi.json from the HTTP handlers (docs/api.md)"
	@echo "make deploydoc regenerate docs/deploy.md's IAM and alarm tables from template.yaml"
	@echo "make asyncapi  regenerate docs/asyncapi.yaml from the event contract and template.yaml (docs/events.md)"
	@echo "make asyncapi-check  validate docs/asyncapi.yaml with @asyncapi/parser (installs node/npm, npm ci)"
	@echo "make browser   headless Chromium for the Swagger UI screenshot test (apt-get install chromium if missing)"
	@echo "make reconcile-cost  incremental vs full reconciliation reads at 100k entities (docs/CONSISTENCY.md)"
	@echo "make rebuild PROJECTION=availability FROM=snapshot STACK=converge  drop and rebuild one projection"
	@echo "make rebuild-local PROJECTION=availability  the same in localcloud, both sources, traffic and faults on"
	@echo "make venv      the project venv;  make deploy-localstack  sam deploy to LocalStack;  make clean  remove it all"

# uv (from PyPI, pinned) installs the requirements several times faster than pip: pip installs only uv, into the venv.
$(STAMP): requirements-dev.txt layers/common/python/requirements.txt
	@echo "first run: installing requirements-dev.txt into $(VENV) with uv (about 35 seconds; once)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --python $(PY) -r requirements-dev.txt
	# The layer on the venv's path, as /opt/python is in Lambda: localcloud, tools and bench import converge.
	$(PY) -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "converge-layer.pth").write_text("$(CURDIR)/layers/common/python\n")'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m localcloud demo

test: lint typecheck template-check asyncapi-check schema-check browser
	$(PY) -m pytest -n 2 --dist loadfile

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile tests/integration

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy layers/common/python/converge $(dir $(wildcard functions/*/*/__init__.py)) localcloud tests bench tools

# uv alone, when SAM CLI or checkov is installed before the project's requirements, or into a venv older than uv here.
$(UV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Installed by the project venv's uv (order-only: a newer uv leaves them be).
$(SAM): | $(UV)
	$(PYTHON) -m venv $(TOOLS)/sam
	$(UV) pip install --quiet --python $(TOOLS)/sam/bin/python aws-sam-cli==$(SAM_VERSION)

$(CHECKOV): | $(UV)
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(UV) pip install --quiet --python $(TOOLS)/checkov/bin/python checkov==$(CHECKOV_VERSION)

# cfn-lint (also inside `sam validate --lint`), checkov with skips justified in the template, and a real build.
template-check: $(STAMP) $(SAM) $(CHECKOV)
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --region us-east-1
	BC_SKIP_MAPPING=TRUE $(CHECKOV) --quiet --compact --framework cloudformation -f template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM) build --build-dir $(TOOLS)/build --cache-dir $(TOOLS)/build-cache

schemas: $(STAMP)
	PYTHONPATH=layers/common/python $(PY) -m converge.schemas events/schemas docs/events.md

# The compatibility gate (docs/events.md, "Versions"): each model against its released events/schemas/<type>/v<N>.json.
schema-check: $(STAMP)
	PYTHONPATH=layers/common/python $(PY) -m converge.compat events/schemas

# docs/deploy.md's IAM and alarm tables, from the translated template (tests/unit/test_deploydoc.py: drift).
deploydoc: $(STAMP)
	$(PY) -m tools.deploydoc docs/deploy.md

openapi: $(STAMP)
	PYTHONPATH=layers/common/python $(PY) -m tools.openapi docs/openapi.json

asyncapi: $(STAMP)
	$(PY) -m tools.asyncapi docs/asyncapi.yaml

# apt-get update only when the install cannot find the packages (a fresh machine's lists may be missing or stale).
$(ASYNCAPI_PARSER): $(ASYNCAPI_CHECK)/package.json $(ASYNCAPI_CHECK)/package-lock.json
	command -v npm >/dev/null || { $(APT_INSTALL) nodejs npm || { apt-get update -q && $(APT_INSTALL) nodejs npm; }; }
	cd $(ASYNCAPI_CHECK) && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

asyncapi-check: $(STAMP) $(ASYNCAPI_PARSER)
	$(PY) -m tools.asyncapi docs/asyncapi.yaml --check
	node $(ASYNCAPI_CHECK)/validate.mjs docs/asyncapi.yaml

# tests/localcloud/test_swagger_ui.py renders /docs in it (--headless --no-sandbox, 127.0.0.1 only).
browser:
	command -v chromium >/dev/null || { $(APT_INSTALL) chromium || { apt-get update -q && $(APT_INSTALL) chromium; }; }

build: $(SAM)
	SAM_CLI_TELEMETRY=0 $(SAM) build

deploy: build
	SAM_CLI_TELEMETRY=0 $(SAM) deploy --guided

deploy-localstack: build
	AWS_ENDPOINT_URL=http://127.0.0.1:4566 SAM_CLI_TELEMETRY=0 $(SAM) deploy --config-env localstack

# LocalStack on this host (no Docker; installed into .tools/localstack from PyPI and npm by ops/localstack/install.sh):
# start, deploy template.yaml through CloudFormation, tests/e2e against it, always stop. See docs/deploy.md.
test-localstack: $(STAMP) $(SAM)
	SAM=$(SAM) PYTHON=$(PY) bash ops/localstack/run.sh

# sam local in Docker (starts dockerd if none runs; builds the python3.13 base image once if it cannot be pulled):
# every events/*.json through `sam local invoke`, then start-api driven until an order converges. docs/localcloud.md.
sam-local: $(STAMP) $(SAM)
	SAM=$(SAM) PYTHON=$(PY) bash ops/samlocal/run.sh

# Benchmarks (docs/BENCHMARKS.md, out/bench.json): ratios against baselines measured in the same run.
# Only the full run updates the tracked report; the quick one writes out/BENCHMARKS.md (bench refuses both at once).
bench: $(STAMP)
	$(PY) -m bench --update-docs --json out/bench.json

bench-quick: $(STAMP)
	$(PY) -m bench --quick --out out/BENCHMARKS.md --json out/bench.json

# Chaos run under faults, the tracked report docs/RELIABILITY.md regenerated: the issue's full figure, about 30 minutes
# here. For a quick look that leaves docs/ alone: `.venv/bin/python -m localcloud chaos --orders 300` (out/RELIABILITY.md).
CHAOS_ORDERS ?= 10000
chaos: $(STAMP)
	$(PY) -m localcloud chaos --orders $(CHAOS_ORDERS) --products 200 --seed 7 --update-docs

# Reconciliation read cost, incremental vs full sweep, at 100k entities (docs/CONSISTENCY.md).
reconcile-cost: $(STAMP)
	$(PY) -m tools.reconcile_cost --entities 100000 --drift 0 0.001 0.01

PROJECTION ?= availability
FROM ?= snapshot
STACK ?= converge
rebuild: $(STAMP)
	$(PY) -m tools.rebuild $(PROJECTION) --from $(FROM) --stack $(STACK)

# The same rebuild in localcloud, from both sources side by side, under traffic and the chaos faults.
rebuild-local: $(STAMP)
	$(PY) -m localcloud rebuild --projection $(PROJECTION) --out out

# sam local invoke's inputs: EVENT=- reads the event from stdin, ENV_VARS=env.json is --env-vars, and
# PARAMETER_OVERRIDES="Key=Value ..." is --parameter-overrides (passed from the environment, its spaces and quotes intact).
invoke: $(STAMP)
	$(PY) -m localcloud invoke $(FUNCTION) --event $(EVENT) $(if $(ENV_VARS),--env-vars $(ENV_VARS)) \
		$(if $(PARAMETER_OVERRIDES),--parameter-overrides "$$PARAMETER_OVERRIDES")

serve: $(STAMP)
	$(PY) -m localcloud serve

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam out .pytest_cache .mypy_cache .ruff_cache
