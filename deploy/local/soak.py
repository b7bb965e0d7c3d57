#!/usr/bin/env python3
"""`make soak`: mixed load on loopback against the real worker, gateway and PostgreSQL.

A benchmark, not a test (never part of `make test`). For SOAK_SECONDS (default 600) a few
client threads upload every supported format (the fixtures in services/ai-worker/tests/
fixtures/formats, made unique per upload) plus hostile documents (HTML nested 100 000 deep, a
PDF whose text is over the extracted-characters cap, a DOCX whose XML inflates past the
zip-bomb guard), search in every mode, chat (streamed to the end, stopped through
`/api/v1/chat/{id}/stop`, abandoned mid-stream), follow progress streams and list. A third of
the way in the worker is restarted (SIGTERM, then started again), two thirds of the way in
PostgreSQL is restarted (fast stop, start). RSS of the worker and the gateway is sampled every
few seconds.

At the end the load stops, ingestion drains, and every upload the gateway acknowledged must
be `ready`, or `failed` with a reason: anything else is stuck, a 404 is lost. Figures go to
bench/results/soak.json and a table on stdout: requests by route and outcome, p50/p99 per
route, RSS first/last/max per service, assets by final state.

Processes are the release binaries (built into CARGO_TARGET_DIR like `make build`), a
throwaway database in the `run` PostgreSQL cluster (.data/pg-run; `make run` must not be
running), and an OpenAI-compatible fake LLM served by this script. Standard library only.
"""

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak_load  # noqa: E402  (the client side: actions and their bookkeeping)

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "deploy" / "local" / "thinkbank_dev.py"
WORK = ROOT / ".data" / "soak"
RESULT = ROOT / "bench" / "results" / "soak.json"


def log(message):
    print(f"soak: {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev(*args, capture=True):
    res = subprocess.run([sys.executable, str(DEV), *args], cwd=ROOT, capture_output=capture, text=True)
    if res.returncode != 0:
        raise SystemExit(f"thinkbank_dev.py {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout


def target_dir():
    configured = os.environ.get("CARGO_TARGET_DIR")
    return Path(configured) if configured else ROOT / "target"


def build():
    log("building the release binaries ...")
    subprocess.run(["cargo", "build", "--release", "-p", "thinkbank-ai-worker", "-p", "thinkbank-gateway"],
                   cwd=ROOT, check=True)
    release = target_dir() / "release"
    return release / "thinkbank-ai-worker", release / "thinkbank-gateway"


class FakeLlm:
    """OpenAI-compatible chat completions, streamed a word at a time with a small delay, so a
    chat lasts long enough to be stopped or abandoned."""

    def __init__(self, words=60, delay=0.03):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def do_GET(self):
                body = json.dumps({"object": "list", "data": [{"id": "soak-model", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                tokens = [f" word{i}" for i in range(words)] + [" [1]."]
                if not request.get("stream"):
                    body = json.dumps({
                        "id": "c", "object": "chat.completion", "created": 0, "model": "soak-model",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "".join(tokens)}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": len(tokens), "total_tokens": len(tokens) + 1},
                    }).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                try:
                    for token in tokens:
                        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "soak-model",
                                 "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(delay)
                    final = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "soak-model",
                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker dropped the call (stop or abandon): what should happen
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Service:
    """One release binary, restartable, logging to .data/soak/<name>.log."""

    def __init__(self, name, binary, env):
        self.name, self.binary, self.env = name, binary, env
        self.process = None
        self.starts = 0

    def start(self):
        log_file = open(WORK / f"{self.name}.log", "ab")
        self.process = subprocess.Popen([str(self.binary)], env=self.env, stdout=log_file,
                                        stderr=subprocess.STDOUT, cwd=ROOT)
        self.starts += 1

    def stop(self, timeout=30):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss_kib(self):
        if not self.process or self.process.poll() is not None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) if match else None


def wait_http(url, timeout=180):
    deadline = time.time() + timeout
    host, port = url.split("//")[1].split(":")
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become healthy within {timeout} s")


def wait_worker(admin_port, timeout=180):
    wait_http(f"http://127.0.0.1:{admin_port}", timeout)


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def rss_summary(samples):
    values = [kib for _, kib in samples if kib]
    if not values:
        return {}
    thirds = max(1, len(values) // 3)
    middle, last = values[thirds:2 * thirds] or values, values[-thirds:]
    return {
        "first_mib": round(values[0] / 1024, 1),
        "last_mib": round(values[-1] / 1024, 1),
        "max_mib": round(max(values) / 1024, 1),
        "middle_third_max_mib": round(max(middle) / 1024, 1),
        "last_third_max_mib": round(max(last) / 1024, 1),
        # Plateau: the last third grows less than 20 % over the middle third's peak.
        "plateau": max(last) <= 1.2 * max(middle),
        "samples": len(values),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--clients", type=int, default=int(os.environ.get("SOAK_CLIENTS", "6")))
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--profile", default="release", help="debug: the debug binaries as they are (a smoke run)")
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    if args.no_build or args.profile != "release":
        worker_bin, gateway_bin = (target_dir() / args.profile / n for n in ("thinkbank-ai-worker", "thinkbank-gateway"))
    else:
        worker_bin, gateway_bin = build()
    exports = dict(re.findall(r"^export (\w+)=(.*)$", dev("env", "--purpose", "run"), re.M))
    exports = {k: shlex.split(v)[0] if v else "" for k, v in exports.items()}
    database = f"soak_{int(time.time())}"
    dev("pg", "psql", "--purpose", "run", "--", "-q", "-c", f"CREATE DATABASE {database}")
    base_uri = exports["THINKBANK_DATABASE_URL"]
    database_url = re.sub(r"/postgres(\?|$)", f"/{database}\\1", base_uri, count=1)
    objects = WORK / f"objects-{database}"
    llm = FakeLlm()
    worker_port, admin_port, gateway_port = free_port(), free_port(), free_port()
    token, admin_key = secrets.token_hex(20), f"tb_{secrets.token_hex(6)}_{secrets.token_hex(16)}"
    common = {**os.environ, "THINKBANK_DATABASE_URL": database_url, "THINKBANK_INTERNAL_TOKEN": token,
              "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    worker = Service("worker", worker_bin, {
        **common,
        "THINKBANK_WORKER_LISTEN": f"127.0.0.1:{worker_port}",
        "THINKBANK_WORKER_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "THINKBANK_EMBED_MODEL_DIR": exports["THINKBANK_EMBED_MODEL_DIR"],
        "THINKBANK_OBJECT_STORE_DIR": str(objects),
        "THINKBANK_LLM_BASE_URL": llm.url,
        "THINKBANK_LLM_API_KEY": "soak",
        "THINKBANK_LLM_MODEL": "soak-model",
        # Small caps so the hostile documents meet them quickly (and fail with the reason).
        "THINKBANK_MAX_EXTRACTED_CHARS": "400000",
        "THINKBANK_MAX_DOCX_XML_BYTES": str(8 * 1024 * 1024),
        # A job held by the worker killed mid-way is claimed again after its lease: keep the
        # drain at the end short.
        "THINKBANK_INGEST_LEASE": "60s",
    })
    gateway = Service("gateway", gateway_bin, {
        **common,
        "THINKBANK_GATEWAY_LISTEN": f"127.0.0.1:{gateway_port}",
        "THINKBANK_WORKER_URL": f"http://127.0.0.1:{worker_port}",
        "THINKBANK_BOOTSTRAP_ADMIN_KEY": admin_key,
        "THINKBANK_JWT_SECRET": secrets.token_hex(24),
        **{f"THINKBANK_RATE_LIMIT_{c}_PER_MIN": "1000000" for c in ("READ", "WRITE", "UPLOAD", "CHAT", "AUTH")},
    })
    worker.start()
    wait_worker(admin_port)
    gateway.start()
    wait_http(f"http://127.0.0.1:{gateway_port}")
    log(f"worker, gateway and database {database} up; {args.seconds} s of load with {args.clients} clients")

    load = soak_load.Load("127.0.0.1", gateway_port, admin_key, ROOT)
    samples = {"worker": [], "gateway": []}
    events = []
    stop = threading.Event()
    started = time.time()

    def sample():
        while not stop.is_set():
            now = round(time.time() - started, 1)
            for service in (worker, gateway):
                samples[service.name].append((now, service.rss_kib()))
            stop.wait(5)

    def chaos():
        if stop.wait(args.seconds / 3):
            return
        t = time.time()
        log("restarting the worker")
        worker.stop()
        worker.start()
        wait_worker(admin_port)
        events.append({"event": "worker restart", "at_s": round(t - started, 1), "down_s": round(time.time() - t, 1)})
        if stop.wait(max(0.0, started + 2 * args.seconds / 3 - time.time())):
            return
        t = time.time()
        log("restarting PostgreSQL")
        dev("pg", "stop", "--purpose", "run")
        dev("pg", "start", "--purpose", "run")
        events.append({"event": "postgres restart", "at_s": round(t - started, 1), "down_s": round(time.time() - t, 1)})

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=chaos, daemon=True)]
    threads += [threading.Thread(target=load.client, args=(stop, random.Random(i)), daemon=True)
                for i in range(args.clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(args.seconds)
    finally:
        stop.set()
        # A restart under way finishes before the drain (its own steps are bounded).
        threads[1].join()
        for thread in threads:
            thread.join(timeout=120)
    log("load stopped; waiting for ingestion to drain")
    assets = load.settle(timeout=900)
    for service in (worker, gateway):
        samples[service.name].append((round(time.time() - started, 1), service.rss_kib()))

    result = {
        "seconds": args.seconds,
        "clients": args.clients,
        "events": events,
        "requests": load.summary(),
        "rss": {name: rss_summary(s) for name, s in samples.items()},
        "rss_samples": {name: s for name, s in samples.items()},
        "assets": assets,
        "worker_starts": worker.starts,
    }
    gateway.stop()
    worker.stop()
    dev("pg", "psql", "--purpose", "run", "--", "-q", "-c", f"DROP DATABASE IF EXISTS {database}")
    subprocess.run(["rm", "-rf", str(objects)], check=False)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    soak_load.print_table(result)
    log(f"wrote {os.path.relpath(args.out, ROOT)}")
    bad = assets["stuck"] + assets["lost"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
