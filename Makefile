# The concurrency lab. `make help` lists the targets; `make up` starts it, `make test` tests it.
.DEFAULT_GOAL := help
SHELL := bash
COMPOSE := docker compose
# VARIANTS and VARIANT_PORT_OFFSETS, generated from the variant table (services/variants/index.ts).
include config/variants.mk
# The commit the images are built from, for the run records (the images have no .git).
export LAB_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)

# The published ports, as compose reads them: the environment's value, else .env's, else the
# default (config/lab.env). Each variant is at VARIANT_BASE_PORT plus its offset.
setting = $(or $($(1)),$(shell sed -n 's/^$(1)=//p' .env 2>/dev/null | tail -n 1),$(2))
GRAFANA_PORT := $(call setting,GRAFANA_PORT,3000)
PROMETHEUS_PORT := $(call setting,PROMETHEUS_PORT,9090)
LOADGEN_PORT := $(call setting,LOADGEN_PORT,9465)
VARIANT_BASE_PORT := $(call setting,VARIANT_BASE_PORT,25001)
LOADGEN := http://127.0.0.1:$(LOADGEN_PORT)
GRAFANA := http://127.0.0.1:$(GRAFANA_PORT)
# The dashboards link to Prometheus' graph at the URL of their `prometheus` variable (9090 by default).
DASHBOARD_VARS := $(if $(filter-out 9090,$(PROMETHEUS_PORT)),?var-prometheus=http://127.0.0.1:$(PROMETHEUS_PORT))

# Grafana is a compose profile, named in .env (COMPOSE_PROFILES=grafana). LAB_NO_GRAFANA=1 leaves
# it out (where no Grafana image can be had), overriding .env.
ifeq ($(LAB_NO_GRAFANA),1)
export COMPOSE_PROFILES :=
endif

.PHONY: help up urls down clean ps logs load scale cpus cpus-reset report test lint test-stack build generate fuzz

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

up: ## build the image, start the lab, wait until it is healthy, print the URLs to open
	./scripts/init-env.sh
	$(COMPOSE) build
	$(COMPOSE) up -d --wait --wait-timeout 240 --remove-orphans
	@$(MAKE) --no-print-directory urls

urls: ## print the URLs and ports of a running lab
	@echo
	@echo "The lab is up. Open:"
	@if [[ "$${COMPOSE_PROFILES-$$(sed -n 's/^COMPOSE_PROFILES=//p' .env 2>/dev/null)}" == *grafana* ]]; then \
	  echo "  Grafana     $(GRAFANA)  (anonymous view; the admin password is in .env)"; \
	  echo "    every variant side by side   $(GRAFANA)/d/lab-overview$(DASHBOARD_VARS)"; \
	  echo "    the talk's demo              $(GRAFANA)/d/lab-talk-demo$(DASHBOARD_VARS)"; \
	  echo "    latency heatmaps             $(GRAFANA)/d/lab-heatmaps$(DASHBOARD_VARS)"; \
	  echo "    one variant in detail        $(GRAFANA)/d/lab-variant$(DASHBOARD_VARS)"; fi
	@echo "  Prometheus  http://127.0.0.1:$(PROMETHEUS_PORT)"
	@echo "  Load gen    $(LOADGEN)/metrics"
	@echo "Talk to a variant yourself (type 6, get fib: 8):"
	@for pair in $(VARIANT_PORT_OFFSETS); do echo "  nc 127.0.0.1 $$(( $(VARIANT_BASE_PORT) + $${pair#*:} ))   ($${pair%%:*})"; done

# make load sends the control token of the running lab (on curl's standard input, not its command
# line): LOADGEN_TOKEN from the environment, else from .env (init-env.sh writes one at every make up).
load: ## switch the running lab's load, keeping what is left out: make load [SCENARIO=beazley] [TARGETS=eventloop,gil] [RATE=200] [CONNECTIONS=2] [THINK=100ms]
	@if [[ -z "$(SCENARIO)$(TARGETS)$(RATE)$(CONNECTIONS)$(THINK)" ]]; then echo "make load: give SCENARIO=perf1,perf2|beazley|mixed|ramp|<file of scenarios/>, TARGETS, RATE, CONNECTIONS or THINK (see lab load --help)" >&2; exit 2; fi
	@token="$${LOADGEN_TOKEN:-$$(sed -n 's/^LOADGEN_TOKEN=//p' .env 2>/dev/null | tail -n 1)}"; \
	if [[ -z "$$token" ]]; then echo "make load: no LOADGEN_TOKEN in the environment or in .env (make up writes one)" >&2; exit 2; fi; \
	body=""; add() { body="$$body$${body:+,}\"$$1\":$$2"; }; \
	if [[ -n "$(SCENARIO)" ]]; then add scenario '"$(SCENARIO)"'; fi; \
	if [[ -n "$(TARGETS)" ]]; then targets='$(TARGETS)'; list=""; \
	  for t in $${targets//,/ }; do list="$$list$${list:+,}\"$$t\""; done; add targets "[$$list]"; fi; \
	if [[ -n "$(RATE)" ]]; then add rate '$(RATE)'; fi; \
	if [[ -n "$(CONNECTIONS)" ]]; then add connections '$(CONNECTIONS)'; fi; \
	if [[ -n "$(THINK)" ]]; then add think '"$(THINK)"'; fi; \
	body="{$$body}"; echo "PUT $(LOADGEN)/scenario $$body"; \
	printf 'authorization: Bearer %s\n' "$$token" | \
	  curl -sS -X PUT -H 'content-type: application/json' -H @- --data "$$body" $(LOADGEN)/scenario

scale: ## run N workers of the queue variant: make scale N=4 (each with its own CPU quota, QUEUE_WORKER_CPUS)
	@if ! [[ "$(N)" =~ ^[0-9]+$$ ]]; then echo "make scale: give the number of queue workers, e.g. make scale N=4" >&2; exit 2; fi
	$(COMPOSE) up -d --no-recreate --wait --scale queue-worker=$(N) queue-worker

# `make cpus` needs no Node on the host: a one-shot container of the lab's image holds the Docker
# socket for this one command (as root, to open it), with no network at all, and is removed. No
# long-running service of the lab mounts the socket. It gets only the *_CPUS lines of .env. The
# socket is found as the docker CLI finds the engine (DOCKER_HOST, the active context, else
# /var/run/docker.sock: scripts/docker-socket.sh), mounted where the lab inside looks for it.
LAB_ONESHOT = docker run --rm --user root --network none -v "$$(./scripts/docker-socket.sh)":/var/run/docker.sock \
  $(if $(wildcard .env),--env-file <(grep -E '^[A-Z_]+_CPUS=' .env)) concurrency-lab:local

cpus: ## change a CPU quota live, no Node needed: make cpus VARIANT=threadpool CPUS=1 (VARIANT=all: every variant)
	@if [[ -z "$(VARIANT)" || -z "$(CPUS)" ]]; then echo "make cpus: give VARIANT=<variant|all> CPUS=<cores>, e.g. make cpus VARIANT=threadpool CPUS=1" >&2; exit 2; fi
	@$(LAB_ONESHOT) cpus $(VARIANT) $(CPUS)

cpus-reset: ## put every variant's CPU quota back to its value in .env
	@$(LAB_ONESHOT) cpus --reset

# make report's sweep; commas inside $(or ...) would split its arguments, hence variables.
SWEEP_VARIANTS ?= eventloop,threads,threadpool
SWEEP_CPUS ?= 0.5,1,1.5,2
SWEEP ?= sweep.json

report: build ## sweep quotas on the running lab, write report.html: make report [SWEEP_VARIANTS=threads,threadpool] [SWEEP_CPUS=0.5,1,2]
	node dist/services/cli/index.js sweep --variants $(SWEEP_VARIANTS) --cpus $(SWEEP_CPUS) --out $(SWEEP)
	node dist/services/cli/index.js report $(SWEEP) --out report.html

down: ## stop the lab and remove its containers and data (keeps .env)
	$(COMPOSE) down -v --remove-orphans

# The lab's own images (the Node one and the Python one); third-party images (Prometheus,
# Grafana, Redis, the base images) are left for other projects. .env is kept: it holds your
# settings (ports, quotas, Grafana's password); delete it yourself to start from the defaults.
clean: ## stop the lab, remove its containers, volumes, images and dist/ (keeps .env)
	-$(COMPOSE) down -v --remove-orphans
	-docker image rm -f concurrency-lab:local concurrency-lab-python:local
	rm -rf dist

# lab ps where Node and the built CLI are there (each variant's quota, workers and figures), else
# compose's own list.
ps: ## show the lab's variants (lab ps where Node is installed, else docker compose ps)
	@if command -v node >/dev/null 2>&1 && [[ -f dist/services/cli/index.js ]]; then \
	  node dist/services/cli/index.js ps --every 0; \
	else \
	  echo "make ps: no Node or no dist/ (make build): docker compose ps instead of lab ps" >&2; $(COMPOSE) ps; fi

logs: ## follow the logs of every service
	$(COMPOSE) logs -f --tail 50

build: dist/.built ## compile the TypeScript into dist/ (again only when a source changed)

# npm run build writes dist/.built last. A target that needs dist/ compiles it again only when a
# TypeScript file, a folder of them (a file added or removed) or the packages changed since: the
# stack tests that CI runs after make test reuse what it built. The folders end in a slash: `test`
# alone would name the phony target, and make would run the tests to build dist/.
TS_DIRS := services grafana/src test benchmarks tools
TS_SOURCES := $(addsuffix /,$(shell find $(TS_DIRS) -type d 2>/dev/null)) $(shell find $(TS_DIRS) -name '*.ts' 2>/dev/null)
dist/.built: node_modules/.package-lock.json tsconfig.json $(TS_SOURCES)
	npm run build

test: node_modules/.package-lock.json ## run the tests: lint, protocol, conformance, hardening, fuzz, lessons, load generator, generated files (no Docker needed)
	npm test

lint: node_modules/.package-lock.json ## type-check, lint and check the formatting
	npm run lint

test-stack: dist/.built ## bring the compose stack up afresh, check it through Prometheus, tear it down
	./scripts/init-env.sh
	node --test dist/test/stack/stack.test.js

generate: build ## regenerate what the variant table drives: docker-compose.yml, prometheus.yml, config/, dashboards
	node dist/tools/generate.js

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# The fuzz harness (test/fuzz/): every variant in turn, FUZZ_SECONDS each; a new seed each run
# unless FUZZ_SEED is given (the seed is printed, with every failure's replay command).
FUZZ_SECONDS ?= 10
.PHONY: fuzz
fuzz: dist/.built ## fuzz every variant: make fuzz [FUZZ_SECONDS=10] [FUZZ_SEED=n] [FUZZ_VARIANTS=a,b]
	node dist/test/fuzz/run.js --seconds $(FUZZ_SECONDS) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED)) $(if $(FUZZ_VARIANTS),--variants $(FUZZ_VARIANTS))

# The same lab on Docker Swarm (docs/swarm.md): docker-stack.yml, generated like docker-compose.yml.
.PHONY: swarm-up swarm-down test-swarm
swarm-up: ## deploy the lab as a Docker Swarm stack (this node must be a manager; docs/swarm.md)
	./scripts/swarm.sh up

swarm-down: ## remove the swarm stack (the swarm itself stays)
	./scripts/swarm.sh down

test-swarm: dist/.built ## deploy the swarm stack on this machine (swarm init if needed), check it, remove it
	node --test dist/test/stack/swarm.test.js
