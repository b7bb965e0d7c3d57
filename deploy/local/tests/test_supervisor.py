"""Echoing the service logs: complete lines only, each once, prefixed with the service name."""

from __future__ import annotations

import contextlib
import io
import tempfile
import unittest
from pathlib import Path

from thinkbank_dev.supervisor import LogEcho


class LogEchoTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.worker = Path(tmp.name) / "worker.log"
        self.gateway = Path(tmp.name) / "gateway.log"

    def pump(self, echo: LogEcho) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            echo.pump()
        return out.getvalue()

    def test_new_complete_lines_are_printed_once_with_aligned_names(self):
        echo = LogEcho({"worker": self.worker, "gateway": self.gateway}, enabled=True)
        self.worker.write_text("ready\npartial")
        self.gateway.write_text("")
        self.assertEqual(self.pump(echo), "worker  | ready\n")
        with self.worker.open("a") as f:
            f.write(" line\nnext\n")
        self.gateway.write_text("listening\n")
        self.assertEqual(self.pump(echo), "worker  | partial line\nworker  | next\ngateway | listening\n")
        self.assertEqual(self.pump(echo), "")

    def test_a_log_not_yet_created_is_skipped(self):
        echo = LogEcho({"worker": self.worker}, enabled=True)
        self.assertEqual(self.pump(echo), "")

    def test_quiet_prints_nothing(self):
        self.worker.write_text("ready\n")
        self.assertEqual(self.pump(LogEcho({"worker": self.worker}, enabled=False)), "")


if __name__ == "__main__":
    unittest.main()
