# sandboxd — see README.md. Every target that needs packages installs them.
GO      ?= go
BIN     := bin/sandboxd
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# sandboxd is linked statically (cmd/sandboxd/link_linux.go): Go's own DNS
# resolver and SQLite without extension loading leave out the two glibc
# functions that a static binary cannot use, which sandboxd never calls
# (tests/harness_test.go builds with the same tags when it is not given a binary).
TAGS    := netgo,sqlite_omit_load_extension
PYTHON  ?= /usr/bin/python3
PYENV   := build/python

.PHONY: all build deps serve test test-host test-clients-python test-clients-cpp test-cg2 bench clean

all: build

build:
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sandboxd

# Debian packages the build and the tests need (gcc for cgo and the C test programs).
deps:
	./scripts/install-deps.sh

# Run sandboxd on its embedded defaults, serving the protocol on stdin/stdout
# (everything else make prints goes to stderr, so stdout stays the protocol's).
serve:
	@./scripts/install-deps.sh >&2
	@$(MAKE) --no-print-directory build >&2
	@exec $(BIN)

# Everything CI runs: unit and conformance tests on this host, the clients'
# tests, then the functional conformance cases under a pure cgroup v2 kernel.
test: deps build test-host test-clients-python test-clients-cpp test-cg2

# The isolate backend's tests run against the real isolate that suits this
# host's cgroups (scripts/setup-isolate.sh configures it and names it).
test-host:
	$(GO) vet ./...
	SANDBOXD_ISOLATE=$$(./scripts/setup-isolate.sh) && export SANDBOXD_ISOLATE && \
		$(GO) test -p 1 -count=1 -timeout 30m ./...
	# A count, not a duration: when a -fuzztime duration runs out, Go's
	# engine may see its deadline before the workers' context is cancelled
	# and fail the run with "context deadline exceeded" (internal/fuzz's
	# stop). No minimizing, which the count does not bound: a failing input
	# is saved whole all the same. 100,000 inputs: 15-60 s here.
	$(GO) test -run '^$$' -fuzz FuzzServe -fuzztime 100000x -fuzzminimizetime 0 ./protocol/

# The Python client's tests and the example judge's and worker's, against
# bin/sandboxd. pip installs the client, offline, into a venv that also sees
# Debian's pytest, mypy and redis-py (the worker's test runs its own
# redis-server).
test-clients-python: build
	./scripts/install-client-deps.sh
	$(PYTHON) -m venv --system-site-packages $(PYENV)
	PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
		$(PYENV)/bin/pip install --quiet --no-deps --force-reinstall ./clients/python
	SANDBOXD_BIN=$(CURDIR)/$(BIN) PYTHONDONTWRITEBYTECODE=1 \
		$(PYENV)/bin/python -m pytest -p no:cacheprovider -rs clients/python/tests examples/judge examples/worker

# The C++ client (clients/cpp) against bin/sandboxd, configured, built and
# run by CTest twice: -Wall -Wextra -Werror at -O2, then under AddressSanitizer
# and UBSan. The reasons of skipped tests are printed.
test-clients-cpp: build
	./scripts/install-client-deps.sh
	$(call client-cpp-ctest,build/clients-cpp,RelWithDebInfo,OFF)
	$(call client-cpp-ctest,build/clients-cpp-sanitized,Debug,ON)

# $(call client-cpp-ctest,BUILD-DIR,BUILD-TYPE,SANITIZE)
define client-cpp-ctest
	cmake -S clients/cpp -B $(1) -DCMAKE_BUILD_TYPE=$(2) -DSANDBOXD_CLIENT_SANITIZE=$(3) -DSANDBOXD_BIN=$(CURDIR)/$(BIN)
	cmake --build $(1) -j 2
	cd $(1) && ctest --output-on-failure; rc=$$?; grep -h '^SKIP: ' Testing/Temporary/LastTest.log; exit $$rc
endef

test-cg2:
	./scripts/test-cg2.sh

# Figures beside baselines measured in the same run (see tests/bench_test.go).
bench: deps build
	$(GO) test -run '^$$' -bench RunTrue -benchtime 2000x -count 1 ./tests/
	$(GO) test -run '^$$' -bench CPULimitKill -benchtime 1x -count 1 ./tests/
	$(GO) test -run '^$$' -bench TwoBoxes -benchtime 3x -count 1 ./tests/
	$(GO) test -run '^$$' -bench Start -benchtime 20x -count 1 ./tests/
	$(GO) test -run '^$$' -bench OpenBox -benchtime 30x -count 1 ./tests/
	$(GO) test -run '^$$' -bench ResetBox -benchtime 30x -count 1 ./tests/
	$(GO) test -run '^$$' -bench PingPong -benchtime 5x -count 1 ./tests/
	$(GO) test -run '^$$' -bench CPUTimeSpread -benchtime 20x -count 1 ./tests/
	$(GO) test -run '^$$' -bench Memfds -benchtime 20x -count 1 ./tests/

clean:
	rm -rf bin build
