# syntax=docker/dockerfile:1
# flowlab in two stages: a release build in the Rust image, then only the binary on a slim
# Debian, run as an unprivileged user. `docker compose up` (docker-compose.yml) adds
# PostgreSQL; README's "Lab deployment" walks through it.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Only what the build reads; .dockerignore keeps target/ and local databases out.
COPY Cargo.toml Cargo.lock ./
COPY migrations migrations
COPY src src
COPY cli cli
# The cache mounts keep the registry and compiled dependencies between builds; the binary is
# copied out because the target mount is gone after this step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin flowlab \
    && cp target/release/flowlab /usr/local/bin/flowlab

FROM debian:bookworm-slim
# curl serves the health check below; ca-certificates lets PostgreSQL connections use TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /var/lib/flowlab flowlab
COPY --from=build /usr/local/bin/flowlab /usr/local/bin/flowlab
USER flowlab
# With the default SQLite database (no DATABASE_URL), flowlab.db is written here.
WORKDIR /var/lib/flowlab
# Listen on every interface of the container: serve then refuses to start without
# FLOWLAB_API_TOKEN (or --allow-unauthenticated). Matrix products on one thread, as main()
# would choose; training threads are FLOWLAB_TRAINING_THREADS. The allocator hands memory a
# training run freed back after 100 ms (README, "Configuration reference").
ENV FLOWLAB_BIND=0.0.0.0:8080 \
    RAYON_NUM_THREADS=1 \
    MIMALLOC_PURGE_DELAY=100
EXPOSE 8080
# /healthz needs no token and answers 503 when the database is unreachable.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD curl --fail --silent --show-error --max-time 4 http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["flowlab"]
CMD ["serve"]
