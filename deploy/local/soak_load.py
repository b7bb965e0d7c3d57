"""The client side of `make soak` (see soak.py): the documents, the mixed actions a client
thread loops over, the bookkeeping of every request, and the final accounting of uploads.
Standard library only."""

import http.client
import io
import json
import random
import threading
import time
import uuid
import zipfile
from collections import defaultdict
from pathlib import Path

FORMATS = "services/ai-worker/tests/fixtures/formats"
WORDS = ("harbour ledger tide anchor beacon compass current keel mast rudder sail ballast "
         "cargo hull lantern mooring pilot quay reef signal storm tiller voyage wharf").split()

# (action, weight): the mix each client draws from.
ACTIONS = (
    ("upload", 14), ("upload_hostile", 2), ("progress", 6), ("search", 30), ("chat_full", 8),
    ("chat_stop", 4), ("chat_abandon", 4), ("list", 8), ("openai", 4),
)


def paragraph(rng, n=60):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


class Load:
    def __init__(self, host, port, key, root):
        self.host, self.port, self.key = host, port, key
        self.root = Path(root)
        self.lock = threading.Lock()
        self.records = []  # (route, outcome, seconds, ended at)
        self.samples = {}  # (route, outcome) -> the first error body seen
        self.started = time.time()
        self.uploads = {}  # asset id -> label
        self.fixtures = {p.name: p.read_bytes() for p in (self.root / FORMATS).iterdir()
                         if p.suffix in (".pdf", ".docx", ".html", ".png", ".jpg", ".gif", ".webp")}

    # ---------------------------------------------------------------- HTTP
    def request(self, route, method, path, body=None, headers=None, stream=False, timeout=120):
        """Sends one request; returns (status, body bytes or an open response) and records the
        outcome: the status, or the exception's class for a failed connection."""
        started = time.time()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        all_headers = {"authorization": f"Bearer {self.key}", **(headers or {})}
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            if stream and response.status == 200:
                return response, conn, started
            data = response.read()
            self.record(route, str(response.status), time.time() - started)
            if response.status >= 400:
                with self.lock:
                    self.samples.setdefault((route, str(response.status)), data[:300].decode("utf-8", "replace"))
            conn.close()
            return response.status, data
        except (OSError, http.client.HTTPException) as error:
            self.record(route, type(error).__name__, time.time() - started)
            conn.close()
            return None, b""

    def record(self, route, outcome, seconds):
        with self.lock:
            self.records.append((route, outcome, seconds, time.time() - self.started))

    def json_post(self, route, path, payload, stream=False):
        return self.request(route, "POST", path, json.dumps(payload).encode(),
                            {"content-type": "application/json"}, stream=stream)

    # ---------------------------------------------------------------- documents
    def document(self, rng):
        """(filename, bytes) of a supported format, unique so that dedup does not skip work."""
        tag = uuid.uuid4().hex
        kind = rng.choice(["md", "txt", "html", "docx", "pdf", "png", "jpg", "gif", "webp", "md", "txt"])
        if kind == "md":
            text = f"# Log {tag}\n\n" + "\n\n".join(f"## Part {i}\n\n{paragraph(rng)}" for i in range(rng.randint(2, 12)))
            return f"{tag}.md", text.encode()
        if kind == "txt":
            return f"{tag}.txt", "\n\n".join(paragraph(rng) for _ in range(rng.randint(2, 20))).encode() + tag.encode()
        if kind == "html":
            return f"{tag}.html", self.fixtures["rust-book-ownership.html"] + f"<!-- {tag} -->".encode()
        if kind == "docx":
            return f"{tag}.docx", self.docx_with(self.fixtures["field-handbook.docx"], tag)
        if kind == "pdf":
            name = rng.choice(["shared-mime-info-spec.pdf", "shared-mime-info-spec.pdf", "scanned-spec-page.pdf"])
            return f"{tag}.pdf", self.fixtures[name] + f"\n% {tag}\n".encode()
        ext = {"png": "png", "jpg": "jpg", "gif": "gif", "webp": "webp"}[kind]
        data = self.fixtures[f"spec-intro.{ext}"]
        if kind != "webp":  # bytes after the image's end marker are ignored by decoders
            data += tag.encode()
        return f"{tag}.{ext}", data

    @staticmethod
    def docx_with(original, tag):
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(original)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for item in source.infolist():
                target.writestr(item, source.read(item.filename))
            target.writestr(f"customXml/soak-{tag}.xml", f"<soak>{tag}</soak>")
        return out.getvalue()

    @staticmethod
    def hostile(rng):
        tag = uuid.uuid4().hex
        kind = rng.choice(["deep_html", "oversized_pdf", "zip_bomb_docx"])
        if kind == "deep_html":
            return kind, f"{tag}.html", (f"<!-- {tag} -->" + "<div>" * 100_000 + "bottom").encode()
        if kind == "oversized_pdf":
            return kind, f"{tag}.pdf", minimal_pdf([paragraph(rng, 1500) for _ in range(60)], tag)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
            body = "<w:document><w:body><w:p><w:r><w:t>" + tag + " " + "A" * (40 * 1024 * 1024) + "</w:t></w:r></w:p></w:body></w:document>"
            z.writestr("word/document.xml", body)
        return kind, f"{tag}.docx", out.getvalue()

    def upload(self, route, filename, data, label, wait=False):
        boundary = uuid.uuid4().hex
        parts = [(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"]
        if wait:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="wait"\r\n\r\ntrue\r\n'.encode())
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        status, payload = self.request(route, "POST", "/api/v1/assets", body,
                                       {"content-type": f"multipart/form-data; boundary={boundary}"})
        if status in (200, 201, 202):
            asset = json.loads(payload)["asset"]
            with self.lock:
                self.uploads[asset["id"]] = label
            return asset["id"]
        return None

    # ---------------------------------------------------------------- streams
    def read_stream(self, route, opened, until=None, max_seconds=120):
        """Reads an SSE response to its end (or until `until(line)` is true, then drops the
        connection); records the whole duration."""
        response, conn, started = opened
        outcome = "200"
        try:
            while time.time() - started < max_seconds:
                line = response.readline()
                if not line:
                    break
                if until and until(line):
                    outcome = "200 dropped by the client"
                    break
        except (OSError, http.client.HTTPException) as error:
            outcome = f"200 then {type(error).__name__}"
        conn.close()
        self.record(route, outcome, time.time() - started)
        return outcome

    def chat(self, rng, how):
        route = {"full": "POST /api/v1/chat (to the end)", "stop": "POST /api/v1/chat (stopped)",
                 "abandon": "POST /api/v1/chat (abandoned)"}[how]
        opened = self.json_post(route, "/api/v1/chat", {"question": f"What does the {rng.choice(WORDS)} log say?"},
                                stream=True)
        if not isinstance(opened, tuple) or len(opened) != 3:
            return
        if how == "full":
            self.read_stream(route, opened)
        elif how == "abandon":
            seen = [0]

            def after_some_tokens(line):
                seen[0] += line.startswith(b"event: delta")
                return seen[0] >= 5
            self.read_stream(route, opened, until=after_some_tokens)
        else:
            conversation = []

            def stop_after_sources(line):
                if line.startswith(b"data:") and b"conversation_id" in line and not conversation:
                    conversation.append(json.loads(line[5:])["conversation_id"])
                    threading.Thread(target=lambda: self.request(
                        "POST /api/v1/chat/{id}/stop", "POST", f"/api/v1/chat/{conversation[0]}/stop")).start()
                return False
            self.read_stream(route, opened, until=stop_after_sources)

    # ---------------------------------------------------------------- the loop
    def client(self, stop, rng):
        names = [a for a, _ in ACTIONS]
        weights = [w for _, w in ACTIONS]
        while not stop.is_set():
            action = rng.choices(names, weights)[0]
            try:
                self.act(action, rng)
            except Exception as error:  # a client bug must not end the soak silently
                self.record(f"client error in {action}", type(error).__name__, 0.0)

    def act(self, action, rng):
        if action == "upload":
            filename, data = self.document(rng)
            self.upload("POST /api/v1/assets", filename, data, filename.rsplit(".", 1)[1], wait=rng.random() < 0.2)
        elif action == "upload_hostile":
            kind, filename, data = self.hostile(rng)
            self.upload("POST /api/v1/assets (hostile)", filename, data, f"hostile {kind}")
        elif action == "progress":
            with self.lock:
                ids = list(self.uploads)[-20:]
            if ids:
                opened = self.request("GET /api/v1/assets/{id}/events", "GET",
                                      f"/api/v1/assets/{rng.choice(ids)}/events", stream=True)
                if isinstance(opened, tuple) and len(opened) == 3:
                    self.read_stream("GET /api/v1/assets/{id}/events", opened, max_seconds=30)
        elif action == "search":
            mode = rng.choice(["hybrid", "vector", "keyword"])
            self.json_post(f"POST /api/v1/search ({mode})", "/api/v1/search",
                           {"query": " ".join(rng.sample(WORDS, 3)), "mode": mode})
        elif action.startswith("chat_"):
            self.chat(rng, action[5:])
        elif action == "list":
            path = rng.choice(["/api/v1/assets?page_size=50", "/api/v1/conversations", "/api/v1/collections"])
            self.request(f"GET {path.split('?')[0]}", "GET", path)
        elif action == "openai":
            self.json_post("POST /v1/chat/completions", "/v1/chat/completions",
                           {"model": "thinkbank", "messages": [{"role": "user", "content": "What is the harbour ledger?"}]})

    # ---------------------------------------------------------------- accounting
    def settle(self, timeout):
        """Waits until no acknowledged upload is queued or processing (or `timeout`), then
        counts final states: ready, failed with a reason, stuck, lost."""
        deadline = time.time() + timeout
        while True:
            states = {}
            for asset_id in list(self.uploads):
                status, body = self.request("final GET /api/v1/assets/{id}", "GET", f"/api/v1/assets/{asset_id}")
                states[asset_id] = (status, json.loads(body) if status == 200 else None)
            # Anything but a final state or a 404 (an answer during a restart) is asked again.
            pending = [a for a, (s, b) in states.items()
                       if s not in (200, 404) or b["status"] in ("queued", "processing")]
            if not pending or time.time() > deadline:
                break
            time.sleep(10)
        counts = defaultdict(int)
        by_label = defaultdict(lambda: defaultdict(int))
        reasons = defaultdict(int)
        for asset_id, (status, body) in states.items():
            label = self.uploads[asset_id]
            if status == 404:
                state = "lost"
            elif status != 200:
                state = "unknown"
            elif body["status"] == "ready":
                state = "ready"
            elif body["status"] == "failed" and (body.get("error") or "").strip():
                state = "failed with a reason"
                reasons[body["error"][:120]] += 1
            elif body["status"] == "failed":
                state = "failed without a reason"
            else:
                state = "stuck"
            counts[state] += 1
            by_label[label][state] += 1
        return {
            "acknowledged": len(states),
            "by_state": dict(counts),
            "by_format": {k: dict(v) for k, v in sorted(by_label.items())},
            "failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "stuck": counts["stuck"] + counts["failed without a reason"] + counts["unknown"],
            "lost": counts["lost"],
        }

    def summary(self):
        by_route = defaultdict(lambda: {"outcomes": defaultdict(int), "seconds": []})
        timeline = defaultdict(lambda: defaultdict(int))
        for route, outcome, seconds, at in self.records:
            by_route[route]["outcomes"][outcome] += 1
            by_route[route]["seconds"].append(seconds)
            if not route.startswith("final"):
                timeline[int(at // 30) * 30]["ok" if outcome.startswith(("2", "3")) else outcome] += 1
        out = {}
        for route, data in sorted(by_route.items()):
            seconds = sorted(data["seconds"])
            pick = lambda p: round(1000 * seconds[min(len(seconds) - 1, int(round(p / 100 * (len(seconds) - 1))))], 1)
            out[route] = {"count": len(seconds), "outcomes": dict(data["outcomes"]),
                          "p50_ms": pick(50), "p99_ms": pick(99),
                          "error_samples": {o: m for (r, o), m in self.samples.items() if r == route}}
        return {"by_route": out, "by_30s": {str(k): dict(v) for k, v in sorted(timeline.items())}}


def minimal_pdf(pages, tag):
    """A PDF with one page of Helvetica text per entry of `pages` (no compression)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None,
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        lines = [text[i:i + 90] for i in range(0, len(text), 90)]
        ops = "BT /F1 8 Tf 20 780 Td 10 TL " + " ".join(f"({l}) '" for l in lines) + " ET"
        objects.append(f"<< /Length {len(ops)} >>\nstream\n{ops}\nendstream")
        content = len(objects)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
                       f"/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = io.BytesIO()
    out.write(f"%PDF-1.4\n% {tag}\n".encode())
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode())
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def print_table(result):
    print(f"\nsoak: {result['seconds']} s, {result['clients']} clients; events: "
          + ", ".join(f"{e['event']} at {e['at_s']} s (down {e['down_s']} s)" for e in result["events"]))
    print(f"\n{'route':48} {'count':>6} {'p50 ms':>9} {'p99 ms':>9}  outcomes")
    for route, r in result["requests"]["by_route"].items():
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]))
        print(f"{route:48} {r['count']:>6} {r['p50_ms']:>9} {r['p99_ms']:>9}  {outcomes}")
    print("\nnon-2xx by 30 s window (restarts: " + ", ".join(f"{e['event']} at {e['at_s']} s" for e in result["events"]) + ")")
    for window, counts in result["requests"]["by_30s"].items():
        print(f"  {window:>5} s: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"\n{'service':10} {'first MiB':>10} {'last MiB':>10} {'max MiB':>10}  plateau")
    for name, r in result["rss"].items():
        if r:
            print(f"{name:10} {r['first_mib']:>10} {r['last_mib']:>10} {r['max_mib']:>10}  {r['plateau']}")
    a = result["assets"]
    print(f"\nassets acknowledged: {a['acknowledged']}; by state: {a['by_state']}; stuck: {a['stuck']}, lost: {a['lost']}")
    for reason, n in list(a["failure_reasons"].items())[:8]:
        print(f"  failed x{n}: {reason}")
