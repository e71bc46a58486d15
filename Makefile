# moonwatch: the two set-up commands are `make run` and `make test`.
# Both install missing Debian packages with apt-get when run as root.
BUILD     ?= build
ASAN      ?= build-asan
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
# Tests run twice as many at once as there are cores: most of the suite's wall time is
# spent waiting (peers starting, scrape intervals, retries); at -j2 on the 2-core CI
# machine it used about a quarter of the CPU (223 of 814 core-seconds), at -j4 half the time.
TEST_JOBS ?= $(shell echo $$(( $(JOBS) * 2 )))
PIPELINE  ?= examples/self-monitoring.lua
RUN_FLAGS ?=

# Debian packages: build and run time, then the tests' real peers and tools.
DEPS_BUILD = build-essential cmake pkg-config clang clang-format libluajit-5.1-dev luajit \
  libev-dev libcurl4-openssl-dev libssl-dev lua-cjson libsnappy-dev libprotobuf-c-dev \
  protobuf-c-compiler libpcre2-dev libmicrohttpd-dev libxxhash-dev libdeflate-dev \
  libsystemd-dev zlib1g-dev libbz2-dev
DEPS_BUILD += libunwind-dev # /debug/pprof/profile: C stacks in the SIGPROF handler
DEPS_BUILD += libyaml-dev # discovery.file: file_sd YAML files (runtime/discovery/filesd.c)
DEPS_TEST  = lua-busted lua-luassert lua-check luarocks curl git libclang-rt-14-dev chromium prometheus \
  python3-prometheus-client prometheus-process-exporter prometheus-node-exporter victoria-metrics
DEPS_TEST += golang-go golang-github-google-pprof-dev # the real pprof tool reads /debug/pprof
DEPS_TEST += systemd-journal-remote # loki.source.journal specs: journal files from export format
DEPS_TEST += libnghttp2-dev # otelcol.exporter.otlp specs: the OTLP/gRPC receiver is an HTTP/2 server on libnghttp2
# native histogram specs: a scrape target built from client_golang (tests/e2e/fixtures/nhtarget)
DEPS_TEST += golang-github-prometheus-client-golang-dev
DEPS_TEST += podman runc mmdebstrap # container_spec: builds the Dockerfile on a Debian 12 root fs made here
DEPS_TEST += yamllint python3-yaml # deploy_spec: the Kubernetes manifests in examples/kubernetes/
DEPS_TEST += openssl # discovery_kubernetes_spec: a self-signed certificate for the in-cluster (HTTPS) API

.PHONY: all deps deps-test build run test asan lint fuzz bench soak soak-kill soak-churn fuzz-alloy clean

all: build

# Installs what is missing (only what is missing), non-interactively, when root.
deps:
	@./tests/install-deps.sh $(DEPS_BUILD)

deps-test:
	@./tests/install-deps.sh $(DEPS_BUILD) $(DEPS_TEST)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/moonwatch run $(RUN_FLAGS) $(PIPELINE)

lint: deps-test $(BUILD)/CMakeCache.txt
	cd $(BUILD) && ctest -R '^lint/' --output-on-failure

asan: deps-test
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DMW_SANITIZE=ON -DMW_LINT_TESTS=OFF
	cmake --build $(ASAN) -j$(JOBS)
	cd $(ASAN) && ctest -j$(TEST_JOBS) --output-on-failure

# Lint and the sanitizer build first; the main build's ctest summary is the last thing printed.
test: deps-test lint asan
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest -j$(TEST_JOBS) --output-on-failure

# Benchmarks (not part of `make test`): C microbenchmarks, then the end-to-end ones
# (remote_write_bench.sh: three scenarios against vmagent, ~15 minutes).
DEPS_BENCH = nginx-light
bench: deps-test build
	@./tests/install-deps.sh $(DEPS_BENCH)
	for b in $(BUILD)/tests/bench_*; do ./$$b; done
	./tests/bench/scrape_bench.sh 20
	./tests/bench/loki_write_bench.sh 2000000 200
	./tests/bench/node_bench.sh $(BUILD)/moonwatch 200
	./tests/bench/remote_write_bench.sh
	./tests/bench/file_tail_bench.sh $(BUILD)/moonwatch 2000000
	./tests/bench/pprof_bench.sh $(BUILD)/moonwatch 4 10

# Soak (not part of `make test`): remote_write's shard count going down and up under load,
# through moonwatch run into a real Prometheus, for SOAK_SECONDS.
SOAK_SECONDS ?= 600
soak: deps-test build
	MOONWATCH_BIN=$(CURDIR)/$(BUILD)/moonwatch MOONWATCH_SOURCE_DIR=$(CURDIR) MOONWATCH_BUILD_DIR=$(CURDIR)/$(BUILD) \
	  MOONWATCH_SOAK_SECONDS=$(SOAK_SECONDS) ./$(BUILD)/moonwatch lua $$(command -v busted) --lpath=tests/lua/?.lua \
	  --filter="shard count goes down and up" tests/e2e/remote_write_spec.lua

# Soak (not part of `make test`): SOAK_KILLS SIGKILLs of moonwatch while it ships ~20,000 samples/s
# into a real Prometheus; no acknowledged sample may be lost (duplicates are reported).
SOAK_KILLS ?= 5
soak-kill: deps-test build
	MOONWATCH_BIN=$(CURDIR)/$(BUILD)/moonwatch MOONWATCH_SOURCE_DIR=$(CURDIR) MOONWATCH_BUILD_DIR=$(CURDIR)/$(BUILD) \
	  MOONWATCH_SOAK_KILLS=$(SOAK_KILLS) ./$(BUILD)/moonwatch lua $$(command -v busted) --lpath=tests/lua/?.lua \
	  tests/e2e/remote_write_kill_spec.lua

# Churn soak (not part of `make test`): 20 targets x 1,000 series renamed at every scrape
# through prometheus.relabel for CHURN_SECONDS; prints RSS and the relabel cache size every 10 s.
CHURN_SECONDS ?= 420
soak-churn: deps-test build
	MOONWATCH_BIN=$(CURDIR)/$(BUILD)/moonwatch MOONWATCH_SOURCE_DIR=$(CURDIR) MOONWATCH_BUILD_DIR=$(CURDIR)/$(BUILD) \
	  MOONWATCH_CHURN_SECONDS=$(CHURN_SECONDS) ./$(BUILD)/moonwatch lua $$(command -v busted) --lpath=tests/lua/?.lua \
	  tests/e2e/relabel_churn_spec.lua

# Coverage-guided fuzzing with libFuzzer (not part of `make test`): FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 300
fuzz: deps-test
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DMW_FUZZ=ON -DMW_LINT_TESTS=OFF
	cmake --build build-fuzz -j$(JOBS)
	./tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

# The Alloy configuration parser, loader and converter are Lua: a mutation fuzzer in the VM.
fuzz-alloy: build
	MOONWATCH_SOURCE_DIR=$(CURDIR) ./$(BUILD)/moonwatch lua tests/fuzz/alloy_fuzz.lua $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN) build-fuzz
