#!/usr/bin/env python3
"""Static checks for docker-compose.yml, deploy/docker/*.Dockerfile and .dockerignore.

No Docker engine is needed: this reads the files and the repository and asserts the invariants
the container set-up relies on:

- the ai-worker publishes no ports (it is internal-only) and is given its internal token,
  never the insecure opt-out; the gateway publishes 8080;
- every THINKBANK_* variable named in the compose file or a Dockerfile is read by the Rust
  sources (as the string literal "THINKBANK_..." in services/*/src or src/);
- each Dockerfile the compose file builds exists, builds from the repository root, and COPYs
  everything cargo reads (Cargo.toml, Cargo.lock, build.rs, src/, proto/, migrations/,
  services/, and .sqlx/ or .cargo/ once they exist); every COPY source exists and
  .dockerignore hides none of them; files embedded at compile time from outside those paths
  are reported;
- `cargo build -p <crate>` names a workspace crate whose binary the Dockerfile then copies.

PyPI's `yaml` module is optional: with it, the compose file is also checked as a structure;
without it, the text checks below still run. Standard library only otherwise.

Usage: python3 deploy/docker/check_compose.py [REPO_ROOT]
Exit status 0 when every check passes, 1 with one line per violation otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

COMPOSE_FILE = "docker-compose.yml"
DOCKERFILES = {
    "gateway": "deploy/docker/gateway.Dockerfile",
    "ai-worker": "deploy/docker/ai-worker.Dockerfile",
}
PACKAGES = {"gateway": "thinkbank-gateway", "ai-worker": "thinkbank-ai-worker"}
INTERNAL_SERVICES = ("ai-worker", "postgres")
GATEWAY_PORT = 8080
# What cargo reads to build any workspace crate; each Dockerfile must COPY all of it.
BUILD_INPUTS = ("Cargo.toml", "Cargo.lock", "build.rs", "src", "proto", "migrations", "services")
# Copied too as soon as they exist: sqlx offline query data, cargo configuration.
OPTIONAL_BUILD_INPUTS = (".sqlx", ".cargo")
DOCKERIGNORE_REQUIRED = ("target", ".data", ".git", "node_modules", "bench/results")

ENV_NAME = re.compile(r"\bTHINKBANK_[A-Z0-9_]+\b")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.checks = 0

    def check(self, ok: bool, message: str) -> bool:
        self.checks += 1
        if not ok:
            self.failures.append(message)
        return ok

    def note(self, message: str) -> None:
        self.notes.append(message)


# ---- compose, as text -------------------------------------------------------------------

def strip_comment(line: str) -> str:
    """Drops a trailing `# comment` that is outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def service_blocks(text: str) -> dict[str, list[str]]:
    """The lines of each service under the top-level `services:` key (2-space indentation)."""
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    inside = False
    for raw in text.splitlines():
        line = strip_comment(raw)
        if not line.strip():
            continue
        if not line[0].isspace():
            inside = line.startswith("services:")
            current = None
            continue
        if not inside:
            continue
        header = re.match(r"^  ([A-Za-z0-9._-]+):\s*$", line)
        if header:
            current = header.group(1)
            blocks[current] = []
        elif current:
            blocks[current].append(line)
    return blocks


def key_items(block: list[str], key: str) -> list[str] | None:
    """The `- item` lines under a 4-space `key:` of a service block (None if no such key)."""
    for i, line in enumerate(block):
        if re.match(rf"^    {re.escape(key)}:\s*$", line):
            items = []
            for item in block[i + 1:]:
                indent = len(item) - len(item.lstrip())
                if indent <= 4:
                    break
                m = re.match(r"^\s+-\s+(.*)$", item)
                if m:
                    items.append(m.group(1).strip())
            return items
        m = re.match(rf"^    {re.escape(key)}:\s*(\[.*\])\s*$", line)
        if m:
            return [s.strip() for s in m.group(1)[1:-1].split(",") if s.strip()]
    return None


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def with_defaults(value: str) -> str:
    """Applies compose interpolation as if no variable were set (`${A:-x}` -> x, `${A}` -> '')."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def published(port) -> tuple[str | None, int | None]:
    """(host port, container port) of a compose port entry, with default interpolation."""
    if isinstance(port, dict):
        target = port.get("target")
        host = port.get("published")
        return (with_defaults(str(host)) if host is not None else None,
                int(with_defaults(str(target))) if target is not None else None)
    spec = with_defaults(unquote(str(port))).split("/")[0]
    parts = spec.rsplit(":", 2) if spec.count(":") >= 2 else spec.split(":")
    try:
        container = int(parts[-1])
    except ValueError:
        return None, None
    host = parts[-2] if len(parts) >= 2 else None
    return host, container


def check_compose_text(text: str, report: Report) -> dict[str, str]:
    """Checks that need only the text; returns each built service's Dockerfile path."""
    blocks = service_blocks(text)
    for name in ("postgres", "ai-worker", "gateway"):
        report.check(name in blocks, f"{COMPOSE_FILE}: no `{name}` service")

    for name in INTERNAL_SERVICES:
        if name in blocks:
            report.check(
                key_items(blocks[name], "ports") is None,
                f"{COMPOSE_FILE}: `{name}` publishes ports; it must stay internal "
                "(use `expose:` for documentation)",
            )

    if "ai-worker" in blocks:
        # The worker fails closed without a token; compose must give it one and never opt out.
        worker = "\n".join(blocks["ai-worker"])
        report.check(
            re.search(r"^\s+THINKBANK_INTERNAL_TOKEN:\s*\S", worker, re.M) is not None,
            f"{COMPOSE_FILE}: `ai-worker` sets no THINKBANK_INTERNAL_TOKEN "
            "(it refuses to start without one)",
        )
        report.check(
            "THINKBANK_INSECURE_NO_INTERNAL_TOKEN" not in worker,
            f"{COMPOSE_FILE}: `ai-worker` must not serve without its internal token",
        )

    if "gateway" in blocks:
        # The gateway refuses to start without an audit key; compose gives it one and never
        # opts out (an unkeyed chain can be rewritten by whoever owns the database).
        gateway = "\n".join(blocks["gateway"])
        report.check(
            re.search(r"^\s+THINKBANK_AUDIT_KEY:\s*\S", gateway, re.M) is not None,
            f"{COMPOSE_FILE}: `gateway` sets no THINKBANK_AUDIT_KEY "
            "(it refuses to start without one)",
        )
        report.check(
            "THINKBANK_INSECURE_NO_AUDIT_KEY" not in gateway,
            f"{COMPOSE_FILE}: `gateway` must not run with an unkeyed audit chain",
        )
        ports = key_items(blocks["gateway"], "ports") or []
        mapped = [published(p) for p in ports]
        report.check(
            any(c == GATEWAY_PORT and h is not None and h.rsplit(":", 1)[-1] == str(GATEWAY_PORT)
                for h, c in mapped),
            f"{COMPOSE_FILE}: `gateway` does not publish port {GATEWAY_PORT} "
            f"(found {ports or 'no ports'})",
        )

    dockerfiles = {}
    for name, block in blocks.items():
        for line in block:
            m = re.match(r"^\s+dockerfile:\s*(.+)$", line)
            if m:
                dockerfiles[name] = unquote(m.group(1))
    for name, expected in DOCKERFILES.items():
        report.check(
            dockerfiles.get(name) == expected,
            f"{COMPOSE_FILE}: `{name}` should build {expected} (found {dockerfiles.get(name)})",
        )
    return dockerfiles


# ---- compose, as YAML (when PyYAML is installed) ------------------------------------------

def check_compose_yaml(text: str, report: Report) -> bool:
    try:
        import yaml  # type: ignore[import-not-found]
    except ImportError:
        return False
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        report.check(False, f"{COMPOSE_FILE}: not valid YAML: {error}")
        return True
    services = doc.get("services") if isinstance(doc, dict) else None
    if not report.check(isinstance(services, dict), f"{COMPOSE_FILE}: no `services` mapping"):
        return True

    for name in INTERNAL_SERVICES:
        service = services.get(name) or {}
        report.check("ports" not in service,
                     f"{COMPOSE_FILE}: `{name}` has `ports:`; it must stay internal")

    gateway = services.get("gateway") or {}
    mapped = [published(p) for p in gateway.get("ports") or []]
    report.check(
        any(c == GATEWAY_PORT and h is not None and h.rsplit(":", 1)[-1] == str(GATEWAY_PORT)
            for h, c in mapped),
        f"{COMPOSE_FILE}: `gateway` does not publish port {GATEWAY_PORT} (yaml)",
    )

    for name, dockerfile in DOCKERFILES.items():
        build = (services.get(name) or {}).get("build")
        ok = isinstance(build, dict) and build.get("context") in (".", "./") \
            and build.get("dockerfile") == dockerfile
        report.check(ok, f"{COMPOSE_FILE}: `{name}` must build {dockerfile} with context `.` "
                         f"(the repository root), found {build!r}")

    for name, service in services.items():
        env = (service or {}).get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
        for key, value in env.items():
            report.check(
                not (key.endswith(("PASSWORD", "TOKEN", "API_KEY", "SECRET")) and value
                     and "${" not in str(value)),
                f"{COMPOSE_FILE}: `{name}` hard-codes {key}; take it from the environment",
            )

    postgres = services.get("postgres") or {}
    report.check(str(postgres.get("image", "")).startswith("pgvector/pgvector:"),
                 f"{COMPOSE_FILE}: `postgres` should use the official pgvector image")
    report.check("healthcheck" in postgres, f"{COMPOSE_FILE}: `postgres` has no healthcheck")

    for name, service in services.items():
        if name == "jaeger" or "jaeger" in str((service or {}).get("image", "")):
            report.check("observability" in ((service or {}).get("profiles") or []),
                         f"{COMPOSE_FILE}: `{name}` must be under the `observability` profile")
    return True


# ---- env var names against the sources ------------------------------------------------

def source_literals(root: Path) -> str:
    files = sorted(root.glob("services/*/src/**/*.rs")) + sorted(root.glob("src/**/*.rs"))
    return "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


def check_env_names(root: Path, texts: dict[str, str], report: Report) -> None:
    sources = source_literals(root)
    report.check(bool(sources), "no Rust sources found under services/*/src or src/")
    for origin, text in texts.items():
        for name in sorted(set(ENV_NAME.findall(text))):
            report.check(f'"{name}"' in sources,
                         f'{origin}: {name} is not read anywhere in the Rust sources '
                         f'(no "{name}" in services/*/src or src/)')


# ---- Dockerfiles -------------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = (pending + stripped).strip()
        pending = ""
        if line:
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def copy_sources(args: str) -> list[str] | None:
    """Sources of a COPY from the build context (None for COPY --from=...)."""
    words = args.split()
    if any(w.startswith("--from") for w in words):
        return None
    words = [w for w in words if not w.startswith("--")]
    return [w.rstrip("/") or "." for w in words[:-1]]


def dockerignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def ignored(path: str, patterns: list[str]) -> bool:
    from fnmatch import fnmatch

    hit = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        bare = pat[3:] if pat.startswith("**/") else pat
        if fnmatch(path, pat) or fnmatch(path, bare) or path.startswith(bare + "/"):
            hit = not negate
    return hit


def workspace_members(root: Path) -> list[str]:
    text = (root / "Cargo.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        return list(tomllib.loads(text).get("workspace", {}).get("members", []))
    except ImportError:
        m = re.search(r"members\s*=\s*\[(.*?)\]", text, re.S)
        return re.findall(r'"([^"]+)"', m.group(1)) if m else []


def package_binaries(root: Path) -> dict[str, set[str]]:
    """Workspace package name -> names of its binaries."""
    result: dict[str, set[str]] = {}
    for member in workspace_members(root):
        manifest = root / member / "Cargo.toml"
        if not manifest.exists():
            continue
        text = manifest.read_text(encoding="utf-8")
        m = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M | re.S)
        if not m:
            continue
        bins = set(re.findall(r'^\[\[bin\]\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M | re.S))
        if (root / member / "src/main.rs").exists():
            bins.add(m.group(1))
        result[m.group(1)] = bins
    return result


def embedded_paths(root: Path) -> list[tuple[Path, str]]:
    """Files a crate embeds at compile time: (source file, repository-relative target)."""
    found = []
    for rs in sorted(root.glob("services/*/src/**/*.rs")) + sorted(root.glob("src/**/*.rs")):
        text = rs.read_text(encoding="utf-8", errors="replace")
        crate = next(p for p in rs.parents if (p / "Cargo.toml").exists())
        for macro, literal in re.findall(
                r'\b(include_str|include_bytes|migrate)!\(\s*"([^"]+)"', text):
            base = crate if macro == "migrate" else rs.parent
            target = (base / literal).resolve()
            try:
                found.append((rs, target.relative_to(root.resolve()).as_posix()))
            except ValueError:
                found.append((rs, str(target)))
    return found


def check_dockerfile(root: Path, service: str, rel: str, report: Report) -> str:
    path = root / rel
    if not report.check(path.is_file(), f"{rel}: missing (built by `{service}` in {COMPOSE_FILE})"):
        return ""
    text = path.read_text(encoding="utf-8")
    steps = instructions(text)
    report.check(text.startswith("# syntax=docker/dockerfile:1"),
                 f"{rel}: first line must be `# syntax=docker/dockerfile:1` (for cache mounts)")

    copied: set[str] = set()
    patterns = dockerignore_patterns(root)
    for word, args in steps:
        if word != "COPY":
            continue
        for source in copy_sources(args) or []:
            copied.add(source)
            report.check((root / source).exists(),
                         f"{rel}: COPY {source} but the repository has no {source}")
            report.check(not ignored(source, patterns),
                         f"{rel}: COPY {source} but .dockerignore excludes it")
    for needed in BUILD_INPUTS:
        report.check(needed in copied and (root / needed).exists(),
                     f"{rel}: must COPY {needed} (cargo reads it), found COPY of {sorted(copied)}")
    for optional in OPTIONAL_BUILD_INPUTS:
        if (root / optional).exists():
            report.check(optional in copied, f"{rel}: {optional}/ exists and must be copied too")
    for rs, target in embedded_paths(root):
        top = target.split("/", 1)[0]
        report.check(top in copied,
                     f"{rel}: {rs.relative_to(root)} embeds {target} at compile time, "
                     "which is not copied into the build")

    package = PACKAGES[service]
    binaries = package_binaries(root)
    build = " ".join(args for word, args in steps if word == "RUN")
    report.check(re.search(rf"cargo build --release --locked -p {re.escape(package)}\b", build)
                 is not None,
                 f"{rel}: should run `cargo build --release --locked -p {package}`")
    report.check(package in binaries, f"{rel}: {package} is not a workspace package")
    for binary in binaries.get(package, ()):
        report.check(f"target/release/{binary}" in build,
                     f"{rel}: does not take target/release/{binary} out of the build")
    report.check(any(w == "USER" and not a.startswith(("root", "0")) for w, a in steps),
                 f"{rel}: the runtime stage must run as a non-root USER")
    report.check(any(w == "EXPOSE" for w, _ in steps), f"{rel}: no EXPOSE")
    return text


def check_dockerignore(root: Path, report: Report) -> None:
    patterns = dockerignore_patterns(root)
    if not report.check(bool(patterns), ".dockerignore: missing or empty"):
        return
    for path in DOCKERIGNORE_REQUIRED:
        report.check(ignored(path, patterns), f".dockerignore: must exclude {path}/")


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[2]
    report = Report()

    compose_path = root / COMPOSE_FILE
    if not compose_path.is_file():
        print(f"check_compose: FAIL: {compose_path} does not exist", file=sys.stderr)
        return 1
    compose = compose_path.read_text(encoding="utf-8")

    dockerfiles = check_compose_text(compose, report)
    if not check_compose_yaml(compose, report):
        report.note("PyYAML not installed: YAML structure checks skipped, text checks ran")

    texts = {COMPOSE_FILE: compose}
    for service, rel in DOCKERFILES.items():
        text = check_dockerfile(root, service, dockerfiles.get(service, rel), report)
        texts[rel] = text
    check_dockerignore(root, report)
    check_env_names(root, texts, report)

    for note in report.notes:
        print(f"check_compose: note: {note}")
    if report.failures:
        for failure in report.failures:
            print(f"check_compose: FAIL: {failure}", file=sys.stderr)
        print(f"check_compose: {len(report.failures)} of {report.checks} checks failed",
              file=sys.stderr)
        return 1
    print(f"check_compose: ok ({report.checks} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
