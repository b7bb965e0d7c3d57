# syntax=docker/dockerfile:1
# thinkbank gateway: the public HTTP edge (REST, SSE, UI) in front of the internal ai-worker.
# Build from the repository root:  docker build -f deploy/docker/gateway.Dockerfile .

# ---- build -------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Everything cargo reads for this workspace: the root package (proto codegen with protox, so no
# protoc), every member crate, and the migrations embedded by sqlx::migrate! at compile time.
# deploy/docker/check_compose.py keeps this list in step with the repository.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src/ src/
COPY proto/ proto/
COPY migrations/ migrations/
# docs/sse-events.md is compiled into the gateway (its OpenAPI description).
COPY docs/ docs/
COPY services/ services/
# The registry and target dirs are BuildKit cache mounts, so they are not in any layer: the
# binary is copied out of target/ in the same RUN.
RUN --mount=type=cache,id=thinkbank-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=thinkbank-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=thinkbank-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p thinkbank-gateway \
 && install -D -m 0755 target/release/thinkbank-gateway /out/thinkbank-gateway

# ---- runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin thinkbank
COPY --from=build /out/thinkbank-gateway /usr/local/bin/thinkbank-gateway

ENV THINKBANK_GATEWAY_LISTEN=0.0.0.0:8080 \
    THINKBANK_LOG_FORMAT=json \
    RUST_LOG=info
USER thinkbank:thinkbank
EXPOSE 8080
# Liveness without curl/wget: bash (part of every Debian base) speaks the one HTTP/1.1 request
# over /dev/tcp, so the image stays ca-certificates-only. The port follows
# THINKBANK_GATEWAY_LISTEN. Readiness (/readyz) is for load balancers, not for restarts.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${THINKBANK_GATEWAY_LISTEN##*:} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/thinkbank-gateway"]
