# One command per job. See README.md.
#   make build   the engine (release) and the seed plugins into plugins/
#   make test    everything the CI runs: guests, fmt, clippy, all tests
#   make bench   the replay benchmark (10 M events, pinned to one core)
#   make bench-floor  the same log through plugins that do no work: the engine's share
#   make lang-plugins the Python and JavaScript ports of the seed plugins (pinned toolchains)

CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
WASM_DIR := target/$(WASM_TARGET)/wasm
SEED_PLUGINS := user-activity session-stats
TEST_GUESTS := bad-user-activity loop-forever memory-bomb trap garbage wrong-world v2-user-activity v3-user-activity floor-sliding floor-session

.PHONY: build deps engine plugins guests lang-plugins test lint bench bench-floor

# Rust target, redis-server, tansu (idempotent; see scripts/deps.sh).
deps:
	scripts/deps.sh

build: deps engine plugins

engine:
	$(CARGO) build --release -p featherflow

# The seed feature plugins, as components, into the engine's default plugin directory.
plugins:
	$(CARGO) build --profile wasm --target $(WASM_TARGET) $(addprefix -p ,$(SEED_PLUGINS))
	mkdir -p plugins
	for p in $(SEED_PLUGINS); do cp $(WASM_DIR)/$$(echo $$p | tr - _).wasm plugins/$$p.wasm.tmp && mv plugins/$$p.wasm.tmp plugins/$$p.wasm; done

# Every guest, including the misbehaving test guests the host tests load.
guests:
	$(CARGO) build --profile wasm --target $(WASM_TARGET) $(addprefix -p ,$(SEED_PLUGINS) $(TEST_GUESTS))

# The Python and JavaScript ports, into target/lang-plugins/ (installs the
# pinned componentize-py and componentize-js into .tools/ on first use).
lang-plugins:
	scripts/build-lang-plugins.sh

lint:
	python3 scripts/check-layers.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -p featherflow --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(addprefix -p ,$(SEED_PLUGINS) $(TEST_GUESTS)) -- -D warnings

test: deps guests lang-plugins lint
	$(CARGO) test -p featherflow-sdk -p user-activity -p session-stats
	$(CARGO) test -p featherflow --release
	$(MAKE) engine plugins
	SKIP_BUILD=1 scripts/test-lang-plugins.sh

bench: build
	taskset -c 0 target/release/featherflow bench --events 10000000 --users 100000 --plugins plugins --repeat 3

# The same benchmark through two plugins with the seed plugins' windows and
# state size but no feature logic: what the engine and the plugin boundary
# cost on their own.
bench-floor: build
	$(CARGO) build --profile wasm --target $(WASM_TARGET) -p floor-sliding -p floor-session
	mkdir -p data/bench/floor-plugins
	cp $(WASM_DIR)/floor_sliding.wasm $(WASM_DIR)/floor_session.wasm data/bench/floor-plugins/
	taskset -c 0 target/release/featherflow bench --events 10000000 --users 100000 --plugins data/bench/floor-plugins --repeat 3
