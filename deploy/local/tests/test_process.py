"""Process handling: liveness that sees through zombies and recycled pids, SIGTERM then SIGKILL,
and the exit code of a visible step."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from thinkbank_dev import process

from .support import needs_proc, quiet_stderr

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); time.sleep(60)"


class ChildTestCase(unittest.TestCase):
    def child(self, code: str) -> subprocess.Popen:
        """A python child printing to a pipe; killed, reaped and closed when the test ends."""
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        return proc


class PidAliveTest(ChildTestCase):
    @needs_proc
    def test_a_live_process_must_also_match_the_expected_command_line(self):
        proc = self.child("import time; time.sleep(60)")
        self.assertTrue(process.pid_alive(proc.pid))
        self.assertTrue(process.pid_alive(proc.pid, "time.sleep(60)"))
        self.assertFalse(process.pid_alive(proc.pid, "postgres"))  # a recycled pid

    @needs_proc
    def test_an_exited_child_not_yet_reaped_is_not_alive(self):
        proc = self.child("pass")
        deadline = time.monotonic() + 10
        while process.pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(process.pid_alive(proc.pid))
        self.assertIsNone(proc.returncode)  # still a zombie: pid_alive did not reap it

    def test_a_reaped_pid_is_not_alive(self):
        proc = self.child("pass")
        proc.wait()
        self.assertFalse(process.pid_alive(proc.pid))
        self.assertTrue(process.wait_for_exit(proc.pid, 1.0))


class TerminateTest(ChildTestCase):
    def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(self):
        proc = self.child(IGNORES_SIGTERM)
        self.assertEqual(proc.stdout.readline(), "ok\n")  # the handler is installed
        with quiet_stderr() as err:
            process.terminate(proc.pid, "stubborn", timeout=0.3, child=proc)
        self.assertEqual(proc.returncode, -9)
        self.assertIn("stubborn (pid", err.getvalue())

    def test_a_child_that_honours_sigterm_exits_without_sigkill(self):
        proc = self.child("import time; print('ok', flush=True); time.sleep(60)")
        self.assertEqual(proc.stdout.readline(), "ok\n")
        with quiet_stderr() as err:
            process.terminate(proc.pid, "polite", timeout=10, child=proc)
        self.assertEqual(proc.returncode, -15)
        self.assertEqual(err.getvalue(), "")


class RunStepTest(unittest.TestCase):
    def test_returns_the_exit_code_and_reports_success(self):
        with quiet_stderr() as err:
            self.assertEqual(process.run_step("fails", [sys.executable, "-c", "raise SystemExit(3)"]), 3)
            self.assertEqual(process.run_step("works", [sys.executable, "-c", "pass"]), 0)
        self.assertIn("==> fails: ", err.getvalue())
        self.assertNotIn("fails ok", err.getvalue())
        self.assertIn("    works ok (", err.getvalue())

    def test_a_missing_program_is_a_launcher_error(self):
        with quiet_stderr(), self.assertRaises(process.LauncherError):
            process.run_step("nothing", ["/nonexistent/program"])


class TailTextTest(unittest.TestCase):
    def test_the_last_lines_or_a_placeholder(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "log"
            log.write_text("a\nb\nc\n")
            self.assertEqual(process.tail_text(log, 2), "b\nc")
            self.assertEqual(process.tail_text(Path(tmp) / "missing", 2), "(no log)")


if __name__ == "__main__":
    unittest.main()
