# Entry points: make run | stop | test | build | lint | fmt. CI (.ci/run) calls `make test`.
SHELL := /bin/bash
MODULES := $(shell go list -m -f '{{.Dir}}')
PKGS := $(addsuffix /...,$(MODULES))
BIN := $(CURDIR)/bin
SERVICES := order inventory payment logistics

.PHONY: build test test-short lint fmt run stop tools

# Runs a command with MariaDB and Redis answering at MYSQL_ADDR/REDIS_ADDR
# (default 127.0.0.1:3306/6379): private ones under .run/test when none do,
# stopped when the command ends.
WITH_DEPS := ./deploy/with-deps.sh

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 go build -o $(BIN)/testbroker ./pkg/testbroker/cmd/testbroker
	@for s in $(SERVICES); do \
		echo "go build $$s-service"; \
		CGO_ENABLED=0 go build -o $(BIN)/$$s ./$$s-service/cmd/$$s || exit 1; \
	done
	CGO_ENABLED=0 go build -o $(BIN)/console ./console/cmd/console

# The e2e tests run the binaries `build` just made (E2E_BIN_DIR) instead of
# building their own copies.
test: build
	E2E_BIN_DIR=$(BIN) $(WITH_DEPS) go test -race -count=1 -timeout 20m $(PKGS)

# Prometheus config, alert rules and the rules' unit tests of docker compose's
# monitoring (deploy/prometheus), with promtool (Debian: apt-get install prometheus).
.PHONY: check-prometheus
test: check-prometheus
check-prometheus:
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

test-short:
	go test -short -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	go vet $(PKGS)
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

fmt:
	gofmt -w $(MODULES)

# Everything on this machine until Ctrl-C (deploy/run.sh: its header lists
# the settings and the address overrides).
run: build
	./deploy/run.sh

# Stops what an interrupted `make run` or `make test` left running.
stop:
	./deploy/run.sh -stop

# Every fault scenario of e2e/chaos_*_test.go (TestChaos): duplicate delivery,
# dropped offset commits, SIGKILL of a consumer and of order-service, broker
# restart with a data dir, MariaDB outage, Redis restarted empty, poison
# messages, pay/timeout race, SIGTERM under load, log secrets, the broker
# refusing sends for 60 s, Redis restarted from an AOF without its last
# second, a sale reset under load. `make test` runs only the fast ones (1, 4,
# 9). E2E_CHAOS_REDIS_DB moves the scenarios' Redis database index.
.PHONY: chaos
chaos:
	CHAOS=1 $(WITH_DEPS) go test -count=1 -timeout 40m -run 'TestChaos' -v ./e2e/

# --- load tool, verifier, benchmarks (loadtest/) ------------------------------
# `make load` runs a sale against the system `make run` started (export its
# ADMIN_TOKEN first) and writes .load/{accepted.txt,report.json,report.html,report.png};
# `make verify` re-checks that sale; `make bench` starts and stops everything itself.
LOAD_FLAGS ?= -stock 10000 -duration 10s -conns 64 -pay 0.5
VERIFY_FLAGS ?=
BENCH_FLAGS ?= -duration 10s -conns 64
.PHONY: load verify bench

load:
	go run ./loadtest/cmd/load -out .load $(LOAD_FLAGS)

verify:
	go run ./loadtest/cmd/verify -accepted .load/accepted.txt $(VERIFY_FLAGS)

bench: build
	CGO_ENABLED=0 go build -o $(BIN)/hello ./loadtest/cmd/hello
	CGO_ENABLED=0 go build -o $(BIN)/bench ./loadtest/cmd/bench
	$(BIN)/bench -bin $(BIN) -root $(CURDIR) -out .bench $(BENCH_FLAGS)
