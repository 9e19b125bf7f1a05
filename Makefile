# The two commands a new machine needs: `make run` and `make test`. Each builds its own venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SANDBOX_PORT ?= 8089
WEBHOOK_PORT ?= 8081
STRINGEE_PORT ?= 8090
# make run's accounts file: examples/accounts.yaml with the sandboxes' ports
RUN_ACCOUNTS ?= .run-accounts.yaml
# make run's Stringee sandbox keys: for a local demo only, like the webhook token below
DEMO_STRINGEE_KEY_SID ?= SK-demo-make-run
DEMO_STRINGEE_KEY_SECRET ?= demo-stringee-key-secret-for-make-run-only
DEMO_STRINGEE_SIGNING_SECRET ?= demo-stringee-signing-secret-for-make-run-only
# make run's webhook token: the sandbox posts call events to the service's listener with it.
# A fixed value for a local demo only; never use it where the listener is reachable from outside.
DEV_WEBHOOK_TOKEN ?= dev-webhook-token-for-make-run-only-0000

export AUTOCALL_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export AUTOCALL_REDIS_TEST_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test lint unit faults bench bench-smoke chart-check schemas image docs clean

$(BIN)/autocall-bridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench,docs]'
	@touch $@

## make run: the service with the example templates and accounts (examples/accounts.yaml: the
## OMICall account `default` fails over to the Stringee account `backup`) against both built-in
## sandboxes, whose calls come back as results through the service's webhook listener
run: $(BIN)/autocall-bridge
	@scripts/ensure-services
	@sed -e 's/127.0.0.1:8089/127.0.0.1:$(SANDBOX_PORT)/' -e 's/127.0.0.1:8090/127.0.0.1:$(STRINGEE_PORT)/' \
	  examples/accounts.yaml > $(RUN_ACCOUNTS)
	@$(BIN)/autocall-bridge sandbox --port $(SANDBOX_PORT) \
	  --webhook-url http://127.0.0.1:$(WEBHOOK_PORT)/webhooks/omicall/$(DEV_WEBHOOK_TOKEN) & omicall=$$!; \
	$(BIN)/autocall-bridge sandbox --provider stringee --port $(STRINGEE_PORT) \
	  --key-sid $(DEMO_STRINGEE_KEY_SID) --key-secret $(DEMO_STRINGEE_KEY_SECRET) \
	  --signing-secret $(DEMO_STRINGEE_SIGNING_SECRET) \
	  --event-url http://127.0.0.1:$(WEBHOOK_PORT)/webhooks/stringee/backup/$(DEV_WEBHOOK_TOKEN) & stringee=$$!; \
	trap 'kill $$omicall $$stringee 2>/dev/null' EXIT INT TERM; \
	AUTOCALL_TEMPLATES=examples/templates.yaml \
	AUTOCALL_ACCOUNTS_FILE=$(RUN_ACCOUNTS) \
	DEMO_OMICALL_API_KEY=sandbox-key \
	DEMO_STRINGEE_KEY_SID=$(DEMO_STRINGEE_KEY_SID) \
	DEMO_STRINGEE_KEY_SECRET=$(DEMO_STRINGEE_KEY_SECRET) \
	DEMO_STRINGEE_SIGNING_SECRET=$(DEMO_STRINGEE_SIGNING_SECRET) \
	AUTOCALL_WEBHOOK_PUBLIC_URL=http://127.0.0.1:$(WEBHOOK_PORT) \
	AUTOCALL_WEBHOOK_TOKEN=$(DEV_WEBHOOK_TOKEN) \
	AUTOCALL_WEBHOOK_PORT=$(WEBHOOK_PORT) \
	$(BIN)/autocall-bridge run

## make test: lint, type check, unit and integration tests (real RabbitMQ, Redis and sandbox)
test: lint
	@scripts/ensure-services
	$(BIN)/pytest -q -m "not faults"

lint: $(BIN)/autocall-bridge
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## make faults: the fault suite (kill -9, broker restart, provider outage, ...)
faults: $(BIN)/autocall-bridge
	@scripts/ensure-services
	$(BIN)/pytest -q -m faults -p no:randomly

bench: $(BIN)/autocall-bridge
	@scripts/ensure-services
	$(BIN)/python -m bench

bench-smoke: $(BIN)/autocall-bridge
	@scripts/ensure-services
	$(BIN)/python -m bench --smoke

chart-check:
	.ci/chart-check

schemas: $(BIN)/autocall-bridge
	$(BIN)/autocall-bridge schemas schemas

image:
	../shared/tools/image-check .

## make docs: the documentation site, docs/ and the pages it publishes from the repository, into site/
docs: $(BIN)/autocall-bridge
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache site
