#!/usr/bin/env python3
"""`make bench-search`: runs thinkbank-bench's bench-search (release, against the test
PostgreSQL; see services/bench/src/bin/bench-search.rs) and draws its recall/latency curve.

1. `thinkbank_dev.py bench search [CHUNKS]` loads >= 100k real passages (384-d) and writes
   bench/results/search.json.
2. A throwaway venv (.data/bench-venv, shared with bench-embed; --venv to move it) gets
   matplotlib, which draws bench/results/search-recall-latency.png: HNSW recall@10 against
   p50 latency over the ef_search sweep, with exact search for reference.

Benchmarks are never part of `make test`. Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RESULT = os.path.join(ROOT, "bench", "results", "search.json")
PLOT = os.path.join(ROOT, "bench", "results", "search-recall-latency.png")

PLOT_SCRIPT = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

result = json.load(open(sys.argv[1]))
curve = result["recall_latency_curve"]
fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
ax.plot([p["p50_ms"] for p in curve], [p["recall_at_10"] for p in curve], "o-", label="HNSW (ef_search sweep)")
for p in curve:
    ax.annotate(str(p["ef_search"]), (p["p50_ms"], p["recall_at_10"]), textcoords="offset points", xytext=(4, -10), fontsize=8)
ax.axvline(result["exact"]["p50_ms"], color="grey", linestyle="--", label=f"exact search p50 ({result['exact']['p50_ms']:.1f} ms)")
for ef, name in ((result["ef_search_default"], "default"), (result["ef_search_high"], "recall=high")):
    point = next(p for p in curve if p["ef_search"] == ef)
    ax.plot(point["p50_ms"], point["recall_at_10"], "s", markersize=9, label=f"{name} (ef_search {ef})")
ax.set_xscale("log")
ax.set_xlabel("p50 latency per query, ms (log scale)")
ax.set_ylabel("recall@10 vs exact")
corpus = result["corpus"]
ax.set_title(f"pgvector HNSW on {corpus['chunks']:,} real chunks ({corpus['dimensions']}-d), k={result['k']}")
ax.grid(True, which="both", alpha=0.3)
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2])
"""


def log(message):
    print(f"bench-search: {message}", file=sys.stderr, flush=True)


def bench_venv(path):
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        log(f"creating the throwaway venv {os.path.relpath(path, ROOT)}")
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
    if subprocess.run([python, "-c", "import matplotlib"], capture_output=True).returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
    return python


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chunks", nargs="?", help="corpus size (default 100000)")
    parser.add_argument("--venv", default=os.path.join(ROOT, ".data", "bench-venv"))
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from search.json")
    args = parser.parse_args()
    if not args.plot_only:
        extra = [args.chunks] if args.chunks else []
        subprocess.run([sys.executable, os.path.join(ROOT, "deploy", "local", "thinkbank_dev.py"),
                        "bench", "search", *extra], cwd=ROOT, check=True)
    python = bench_venv(args.venv)
    subprocess.run([python, "-c", PLOT_SCRIPT, RESULT, PLOT], check=True)
    result = json.load(open(RESULT, encoding="utf-8"))
    keys = ["http_vs_sql_p50_ratio", "http_vs_sql_qps_ratio", "recall_at_10_default",
            "recall_at_10_high", "hnsw_vs_exact_latency_ratio", "filtered_rows_returned",
            "filtered_recall_at_10", "hybrid_vs_max_leg_latency_ratio"]
    for key in keys:
        print(f"{key:34} {result[key]}")
    log(f"wrote {os.path.relpath(RESULT, ROOT)} and {os.path.relpath(PLOT, ROOT)}")


if __name__ == "__main__":
    main()
