"""System programs the stack and its tests need beyond Python: poppler and Tesseract for
ingestion, chromium + node for the browser tests, the man pages for the retrieval eval.
Installed with apt-get when missing (as root or with passwordless sudo), else explained."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable, Dict, List, Optional

from .console import LauncherError, log
from .paths import UI_TEST_DIR, file_hash, rel

# Programs the worker runs to read PDFs and images (Debian package names). The worker finds
# them on PATH; THINKBANK_PDFTOTEXT / _PDFINFO / _PDFTOPPM / _TESSERACT override.
SYSTEM_PACKAGES = {
    "pdftotext": "poppler-utils",
    "pdfinfo": "poppler-utils",
    "pdftoppm": "poppler-utils",
    "tesseract": "tesseract-ocr",
}
# Tesseract's English model lives in its own package with no program to probe for.
SYSTEM_EXTRA_PACKAGES = ["tesseract-ocr-eng"]

# The browser tests (services/gateway/tests/ui_browser.rs) drive Debian's chromium with
# playwright-core from tests/ui (npm ci from its lock file; `npx playwright install` would need
# the internet beyond the registries).
BROWSER_TEST_PACKAGES = {"chromium": "chromium", "node": "nodejs", "npm": "npm"}

# The retrieval eval's second corpus (services/gateway/tests/eval/manpages.rs): the Linux
# man-pages, as Debian ships them.
EVAL_CORPUS_PACKAGES = ["manpages", "manpages-dev"]


def missing_packages(programs: Dict[str, str], found: Callable[[str], bool]) -> List[str]:
    """The packages (sorted, once each) providing the programs that `found` does not find."""
    return sorted({pkg for prog, pkg in programs.items() if not found(prog)})


def on_path(program: str) -> bool:
    return shutil.which(program) is not None


def apt_install(packages: List[str], why: str) -> None:
    """Install Debian packages quietly with apt-get (as root, or with passwordless sudo);
    otherwise say which command to run."""
    if os.geteuid() == 0:
        prefix: List[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        raise LauncherError(
            f"missing system programs {why}; install them with:\n"
            f"  sudo apt-get install -y {' '.join(packages)}"
        )
    if shutil.which("apt-get") is None:
        raise LauncherError(f"missing system packages {packages} and no apt-get to install them")
    log(f"installing {' '.join(packages)} with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        res = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise LauncherError(f"{' '.join(cmd)} failed:\n{res.stderr.strip()[-2000:]}")


def ensure_system_packages() -> None:
    """Install poppler-utils and Tesseract with apt when a program is missing."""
    missing = missing_packages(SYSTEM_PACKAGES, on_path)
    if missing:
        apt_install(missing + SYSTEM_EXTRA_PACKAGES, "for PDF and image ingestion")


def chromium_path() -> Optional[str]:
    return os.environ.get("THINKBANK_CHROMIUM") or shutil.which("chromium")


def browser_program_found(program: str) -> bool:
    # THINKBANK_CHROMIUM may name a chromium that is not on PATH.
    return on_path(program) or (program == "chromium" and bool(chromium_path()))


def ensure_browser_test_tools() -> None:
    """chromium and node from apt when missing, then `npm ci` in tests/ui when its lock file
    changed since the last install (the lock's hash is kept in node_modules)."""
    missing = missing_packages(BROWSER_TEST_PACKAGES, browser_program_found)
    if missing:
        apt_install(missing, "for the browser tests")
    lock = UI_TEST_DIR / "package-lock.json"
    stamp = UI_TEST_DIR / "node_modules" / ".thinkbank-lock-sha256"
    wanted = file_hash(lock)
    try:
        if stamp.read_text().strip() == wanted:
            return
    except OSError:
        pass
    log(f"installing the browser test dependencies into {rel(UI_TEST_DIR / 'node_modules')} (npm ci) ...")
    res = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=UI_TEST_DIR, capture_output=True, text=True,
    )
    if res.returncode != 0:
        raise LauncherError(f"npm ci in {rel(UI_TEST_DIR)} failed:\n{res.stderr.strip()[-2000:]}")
    stamp.write_text(wanted + "\n")


def dpkg_all_installed(returncode: int, stdout: str, packages: List[str]) -> bool:
    """Read `dpkg-query -W -f='${db:Status-Status} '`: every package must say `installed`."""
    return returncode == 0 and stdout.split() == ["installed"] * len(packages)


def ensure_eval_corpora() -> None:
    """The man-pages packages when dpkg does not list them as installed."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ", *EVAL_CORPUS_PACKAGES],
                         capture_output=True, text=True)
    if not dpkg_all_installed(res.returncode, res.stdout, EVAL_CORPUS_PACKAGES):
        apt_install(EVAL_CORPUS_PACKAGES, "for the retrieval eval's man-pages corpus")
