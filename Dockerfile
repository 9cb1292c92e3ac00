# syntax=docker/dockerfile:1
# featherflow: the engine and the seed feature plugins in one image.
#
#   docker build -t featherflow .
#   docker run --rm featherflow --help
#   docker compose up -d --build        # Kafka, Redis, Kafka UI, the engine and a generator
#
# Configuration comes from FEATHERFLOW_<SECTION>_<KEY> environment variables
# (FEATHERFLOW_KAFKA_BROKERS, FEATHERFLOW_REDIS_URL, FEATHERFLOW_PLUGINS_DIR,
# FEATHERFLOW_CHECKPOINT_DIR, FEATHERFLOW_API_LISTEN, FEATHERFLOW_TIME_ZONE, ...)
# or a TOML file passed with `run --config`. Every FEATHERFLOW_* variable must
# name a real key: unknown ones are rejected at start.

ARG RUST_IMAGE=rust:1.95-bookworm

# ---- stage 1: build the engine and the plugins --------------------------------
FROM ${RUST_IMAGE} AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# The caches keep crates and incremental artifacts between builds (BuildKit);
# the results are copied out of the cached target/ into /out. Debug info is
# ~120 MB of the binary: it is stripped, symbols stay (backtraces keep names).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    set -eux; \
    cargo build --release -p featherflow; \
    cargo build --profile wasm --target wasm32-wasip2 -p user-activity -p session-stats; \
    mkdir -p /out/plugins; \
    objcopy --strip-debug target/release/featherflow /out/featherflow; \
    cp target/wasm32-wasip2/wasm/user_activity.wasm /out/plugins/user-activity.wasm; \
    cp target/wasm32-wasip2/wasm/session_stats.wasm /out/plugins/session-stats.wasm

# ---- stage 2: runtime ------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/featherflow featherflow \
 && mkdir -p /var/lib/featherflow/data/checkpoints /opt/featherflow/plugins \
 && chown -R featherflow:featherflow /var/lib/featherflow

COPY --from=build /out/featherflow /usr/local/bin/featherflow
COPY --from=build /out/plugins/ /opt/featherflow/plugins/

ENV FEATHERFLOW_PLUGINS_DIR=/opt/featherflow/plugins \
    FEATHERFLOW_CHECKPOINT_DIR=/var/lib/featherflow/data/checkpoints \
    FEATHERFLOW_OUTPUT_DEAD_LETTER=/var/lib/featherflow/data/dead-letter.jsonl \
    FEATHERFLOW_API_LISTEN=0.0.0.0:8081

USER featherflow
WORKDIR /var/lib/featherflow
# Checkpoints (sled) and the dead-letter log live here: keep it on a volume.
VOLUME /var/lib/featherflow
EXPOSE 8081
# SIGTERM (docker stop) takes a final checkpoint before the engine exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["featherflow"]
CMD ["run"]
