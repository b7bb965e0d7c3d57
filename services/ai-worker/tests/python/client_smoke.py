#!/usr/bin/env python3
"""Smoke test of a live AiWorker from a Python client generated from proto/ by grpcio-tools.

Generate the stubs, then point the script at a running worker:

    python -m grpc_tools.protoc -I proto --python_out=/tmp/tbgen --grpc_python_out=/tmp/tbgen \
        proto/thinkbank/v1/*.proto
    python services/ai-worker/tests/python/client_smoke.py --addr 127.0.0.1:50051 \
        --generated /tmp/tbgen

It embeds a text, ingests a small markdown document and waits for it, finds it with
VectorSearch, asks ChatStream about it and checks two error codes. With --reflection it also
lists the services through server reflection (grpcio-reflection speaks v1alpha only). It prints
one summary line and exits 0, or prints what failed and exits 1.

The checks tolerate an existing knowledge base: the document carries a unique marker word.
"""

import argparse
import math
import sys
import uuid

MODEL = "all-minilm-l6-v2"
DIMENSIONS = 384


class CheckFailed(Exception):
    """A check saw something other than what a client of the worker should see."""


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def expect_status(call, code, what):
    """Runs `call` and returns the grpc.RpcError it raises, which must carry `code`."""
    import grpc

    try:
        call()
    except grpc.RpcError as error:
        check(
            error.code() == code,
            f"{what}: expected {code.name}, got {error.code().name}: {error.details()}",
        )
        return error
    raise CheckFailed(f"{what}: expected {code.name}, but the call succeeded")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", required=True, help="worker address, e.g. 127.0.0.1:50051")
    parser.add_argument(
        "--generated", help="directory holding the generated thinkbank/v1 modules"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="deadline of each call, in seconds"
    )
    parser.add_argument(
        "--reflection",
        action="store_true",
        help="only list the services through server reflection (v1alpha)",
    )
    args = parser.parse_args(argv)
    if not args.reflection and not args.generated:
        parser.error("--generated is required (unless --reflection)")
    return args


def run_smoke(channel, timeout):
    from thinkbank.v1 import (
        ai_worker_pb2_grpc,
        assets_pb2,
        chat_pb2,
        embeddings_pb2,
        search_pb2,
    )
    import grpc

    stub = ai_worker_pb2_grpc.AiWorkerStub(channel)

    # GetEmbedding: one L2-normalised vector of the model's dimensions.
    embedded = stub.GetEmbedding(
        embeddings_pb2.GetEmbeddingRequest(texts=["hello world"]), timeout=timeout
    )
    check(embedded.model == MODEL, f"GetEmbedding: model {embedded.model!r}, expected {MODEL!r}")
    check(
        embedded.dimensions == DIMENSIONS,
        f"GetEmbedding: dimensions {embedded.dimensions}, expected {DIMENSIONS}",
    )
    check(len(embedded.embeddings) == 1, f"GetEmbedding: {len(embedded.embeddings)} embeddings")
    values = embedded.embeddings[0].values
    check(len(values) == DIMENSIONS, f"GetEmbedding: {len(values)} values, expected {DIMENSIONS}")
    norm = math.sqrt(sum(v * v for v in values))
    check(abs(norm - 1.0) < 1e-3, f"GetEmbedding: vector norm {norm}, expected 1")

    # ProcessAsset with wait=True returns once the document is searchable.
    marker = f"zorblax{uuid.uuid4().hex[:8]}"
    document = (
        "# Tides\n\n"
        "Ocean tides are caused mainly by the gravitational pull of the Moon on the Earth. "
        f"Sailors at {marker} harbour check the tide tables every morning.\n"
    )
    processed = stub.ProcessAsset(
        assets_pb2.ProcessAssetRequest(
            filename="tides.md",
            declared_media_type="text/markdown",
            content=document.encode("utf-8"),
            wait=True,
        ),
        timeout=timeout,
    )
    asset = processed.asset
    check(
        asset.status == assets_pb2.ASSET_STATUS_READY,
        f"ProcessAsset: status {assets_pb2.AssetStatus.Name(asset.status)}, expected "
        f"ASSET_STATUS_READY (error: {asset.error!r})",
    )
    check(asset.chunk_count >= 1, f"ProcessAsset: chunk_count {asset.chunk_count}")

    # VectorSearch ranks the new document first.
    found = stub.VectorSearch(
        search_pb2.VectorSearchRequest(
            query=f"what causes ocean tides at {marker} harbour?", top_k=3
        ),
        timeout=timeout,
    )
    check(len(found.hits) >= 1, "VectorSearch: no hits")
    check(
        found.hits[0].asset_id == asset.id,
        f"VectorSearch: first hit is asset {found.hits[0].asset_id} "
        f"({found.hits[0].filename}), expected {asset.id}",
    )

    # ChatStream: sources first, then deltas, then one final message with a citation.
    events = list(
        stub.ChatStream(
            chat_pb2.ChatStreamRequest(question=f"What causes the tides at {marker} harbour?"),
            timeout=timeout,
        )
    )
    kinds = [event.WhichOneof("event") for event in events]
    check(len(kinds) >= 4, f"ChatStream: only {len(kinds)} messages: {kinds}")
    check(kinds[0] == "sources", f"ChatStream: first message is {kinds[0]!r}, expected 'sources'")
    check(kinds[-1] == "final", f"ChatStream: last message is {kinds[-1]!r}, expected 'final'")
    check(
        all(kind == "delta" for kind in kinds[1:-1]),
        f"ChatStream: messages between sources and final must be deltas: {kinds}",
    )
    deltas = kinds.count("delta")
    check(deltas >= 2, f"ChatStream: {deltas} deltas, expected at least 2")
    sources = events[0].sources.sources
    check(
        len(sources) >= 1 and sources[0].hit.asset_id == asset.id,
        f"ChatStream: source [1] is not the new asset: {[s.hit.asset_id for s in sources]}",
    )
    answer = "".join(event.delta.text for event in events[1:-1])
    final = events[-1].final
    check(
        final.answer_mode == chat_pb2.ANSWER_MODE_EXTRACTIVE,
        f"ChatStream: answer_mode {chat_pb2.AnswerMode.Name(final.answer_mode)}, "
        "expected ANSWER_MODE_EXTRACTIVE",
    )
    check(
        final.finish_reason == chat_pb2.FINISH_REASON_STOP,
        f"ChatStream: finish_reason {chat_pb2.FinishReason.Name(final.finish_reason)}",
    )
    check(
        any(c.source_index == 1 and c.quoted and not c.verified for c in final.citations),
        f"ChatStream: no quoted citation of [1] in {list(final.citations)} for {answer!r}",
    )
    check(not final.abstained, f"ChatStream: abstained on a question its document answers: {answer!r}")
    check("[1]" in answer, f"ChatStream: the answer does not cite [1]: {answer!r}")

    # Errors arrive as gRPC status codes.
    missing = str(uuid.uuid4())
    error = expect_status(
        lambda: stub.GetAsset(assets_pb2.GetAssetRequest(id=missing), timeout=timeout),
        grpc.StatusCode.NOT_FOUND,
        "GetAsset of an unknown id",
    )
    check(missing in error.details(), f"GetAsset: message does not name the id: {error.details()}")
    expect_status(
        lambda: stub.GetEmbedding(embeddings_pb2.GetEmbeddingRequest(texts=[]), timeout=timeout),
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetEmbedding of no texts",
    )

    return (
        f"client_smoke: ok: embedding {len(values)} dims (norm {norm:.4f}), asset {asset.id} "
        f"READY with {asset.chunk_count} chunk(s), found first by VectorSearch, ChatStream "
        f"sent sources + {deltas} deltas + final ({chat_pb2.AnswerMode.Name(final.answer_mode)}, "
        f"{len(final.citations)} citation(s)), NOT_FOUND and INVALID_ARGUMENT as expected"
    )


def run_reflection(channel):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    import grpc

    database = ProtoReflectionDescriptorDatabase(channel)
    try:
        services = sorted(database.get_services())
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise CheckFailed(
                "reflection: the server does not serve grpc.reflection.v1alpha.ServerReflection, "
                "the only version grpcio-reflection (and grpcurl < 1.8.8) can use"
            ) from error
        raise
    check(
        "thinkbank.v1.AiWorker" in services,
        f"reflection: thinkbank.v1.AiWorker is not listed: {services}",
    )
    check(
        "grpc.health.v1.Health" in services,
        f"reflection: grpc.health.v1.Health is not listed: {services}",
    )
    service = database.FindFileContainingSymbol("thinkbank.v1.AiWorker")
    methods = sorted(m.name for s in service.service if s.name == "AiWorker" for m in s.method)
    expected = sorted([
        "CancelAsset", "CancelMigration", "ChatStream", "CheckDependencies", "CreateCollection", "DeleteAsset", "DeleteConversation", "GetAsset", "GetChatInfo", "GetCollection", "GetConversation", "GetEmbedding", "ListAssets", "ListCollections", "ListConversations", "ListEmbeddingModels", "MigrateCollection", "ProcessAsset", "RenameConversation", "ReprocessAsset", "UploadAsset", "VectorSearch", "WatchAsset",
    ])
    check(methods == expected, f"reflection: AiWorker has methods {methods}, expected {expected}")
    return f"client_smoke: ok: reflection lists {', '.join(services)}; AiWorker: {', '.join(methods)}"


def main(argv):
    args = parse_args(argv)
    if args.generated:
        sys.path.insert(0, args.generated)
    import grpc

    channel = grpc.insecure_channel(args.addr)
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        if args.reflection:
            summary = run_reflection(channel)
        else:
            summary = run_smoke(channel, args.timeout)
    except CheckFailed as failure:
        print(f"client_smoke: FAILED: {failure}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        print(
            f"client_smoke: FAILED: unexpected {error.code().name}: {error.details()}",
            file=sys.stderr,
        )
        return 1
    except ImportError as error:
        print(
            f"client_smoke: FAILED: cannot import a module ({error}); is --generated the "
            "grpc_tools.protoc output directory and is grpcio-reflection installed?",
            file=sys.stderr,
        )
        return 1
    except grpc.FutureTimeoutError:
        print(f"client_smoke: FAILED: cannot connect to {args.addr} within 30 s", file=sys.stderr)
        return 1
    finally:
        channel.close()
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
